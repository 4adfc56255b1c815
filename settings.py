"""One Settings class for every o2c process (API, worker, CLI, dev runner).

Values come from ``O2C_*`` environment variables; the README lists each one. Settings are
built once at a composition root and passed explicitly, never read as import-time globals.
"""

from __future__ import annotations

import os
import secrets
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

TASK_QUEUE = "o2c"
Port = Annotated[int, Field(ge=1, le=65535)]
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Settings(BaseSettings):
    """Runtime configuration; ``O2C_`` prefix, empty variables ignored."""

    model_config = SettingsConfigDict(env_prefix="O2C_", env_ignore_empty=True, extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path(".o2c")
    database_url: str | None = None
    api_host: str = "127.0.0.1"
    api_port: Port = 8000
    temporal_address: str | None = None
    temporal_port: Port = 7233
    temporal_ui_port: Port = 8233
    # Where operators open the Temporal UI (links in the API and console); the dev server's
    # own UI when o2c starts it, else none unless set.
    temporal_ui_url: str | None = None
    temporal_namespace: str = "default"
    # A secured cluster (Temporal Cloud, a self-hosted one with TLS): an API key, mutual TLS
    # with a client certificate, a private CA. TLS is on whenever a key or a client
    # certificate is set, unless O2C_TEMPORAL_TLS says otherwise.
    temporal_api_key: str | None = None
    temporal_tls: bool | None = None
    temporal_tls_ca: Path | None = None
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    task_queue: str = TASK_QUEUE
    admin_key: str | None = None
    sandbox: bool = False
    smtp_url: str | None = None
    smtp_sink_port: Port = 8025
    mail_from: str = "billing@o2c.local"
    approval_discount: Decimal = Decimal("0.20")
    otel_exporter: Literal["none", "console", "otlp"] = "none"
    otel_endpoint: str | None = None
    log_level: str = "INFO"
    # A Python worker runs its workflows and activities under one interpreter lock, so on
    # a machine of several cores the stack scales by processes: one worker per core.
    worker_processes: int = Field(default_factory=lambda: min(os.cpu_count() or 1, 64), ge=1, le=64)
    worker_max_cached_workflows: int = Field(default=1000, ge=1)
    worker_max_concurrent_activities: int = Field(default=200, ge=1)
    worker_max_concurrent_local_activities: int = Field(default=200, ge=1)
    # On SIGTERM/SIGINT a worker stops polling and lets the activities under way finish for
    # this long (below the dev runner's wait for its children), then cancels the rest.
    worker_shutdown_seconds: float = Field(default=10.0, ge=0, le=300)

    @property
    def tracing(self) -> bool:
        """Whether spans are made at all: with no exporter nobody would see them, so the
        API's instrumentation and Temporal's tracing plugin stay out of every request."""
        return self.otel_exporter != "none"

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, url: str | None) -> str | None:
        if url is None:
            return None
        try:
            driver = make_url(url).drivername
        except ArgumentError:
            raise ValueError("not a database URL (sqlite:///… or postgresql+psycopg://…)") from None
        if not driver.startswith(("sqlite", "postgresql")):
            raise ValueError(f"{driver} is not supported: SQLite or PostgreSQL")
        return url

    @field_validator("smtp_url")
    @classmethod
    def _smtp(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("must be smtp://[user:pass@]host[:port] or smtps://…")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(
                "has more than user, password, host and port: percent-encode '/', '?', '#' "
                "and '@' in the user and password"
            )
        try:
            parts.port  # noqa: B018 - parsing it checks it
        except ValueError:
            raise ValueError("the port must be a number from 1 to 65535") from None
        return url

    @field_validator("log_level")
    @classmethod
    def _level(cls, level: str) -> str:
        if level.upper() not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return level.upper()

    @model_validator(mode="after")
    def _client_certificate_whole(self) -> Settings:
        if (self.temporal_tls_cert is None) != (self.temporal_tls_key is None):
            raise ValueError(
                "O2C_TEMPORAL_TLS_CERT and O2C_TEMPORAL_TLS_KEY go together (mutual TLS)"
            )
        return self

    @property
    def temporal_uses_tls(self) -> bool:
        if self.temporal_tls is not None:
            return self.temporal_tls
        return bool(self.temporal_api_key or self.temporal_tls_cert or self.temporal_tls_ca)

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.environment == "production":
            if self.sandbox:
                raise ValueError("O2C_SANDBOX must be off in production")
            if self.admin_key is not None and len(self.admin_key) < 24:
                raise ValueError("O2C_ADMIN_KEY must be at least 24 characters in production")
        return self

    @property
    def db_url(self) -> str:
        """The SQLAlchemy URL: ``O2C_DATABASE_URL`` or SQLite in the data folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'o2c.db').resolve()}"

    @property
    def temporal_target(self) -> str:
        """Where clients connect: an existing Temporal, or the dev server we start."""
        return self.temporal_address or f"127.0.0.1:{self.temporal_port}"

    @property
    def temporal_ui(self) -> str | None:
        """The Temporal UI's address: ``O2C_TEMPORAL_UI_URL``, else the dev server's (when
        o2c starts it), else None."""
        if self.temporal_ui_url:
            return self.temporal_ui_url.rstrip("/")
        if self.temporal_address:
            return None
        return f"http://127.0.0.1:{self.temporal_ui_port}"

    @property
    def smtp_target(self) -> str:
        """``O2C_SMTP_URL`` or the local sink's address."""
        return self.smtp_url or f"smtp://127.0.0.1:{self.smtp_sink_port}"


def stored_admin_key(settings: Settings) -> str | None:
    """``O2C_ADMIN_KEY``, else the key ``make run`` generated and kept in the data folder
    (None when there is neither)."""
    if settings.admin_key:
        return settings.admin_key
    path = settings.data_dir / "admin_key"
    if not path.exists():
        return None
    return path.read_text().strip() or None


def generate_admin_key() -> str:
    """A fresh bootstrap admin key (printed by ``make run`` when none is set)."""
    return "o2c_admin_" + secrets.token_urlsafe(24)
