"""The API over a temp SQLite ERP with Temporal unreachable (nothing here needs it);
``client_any_db`` runs a test on SQLite and again on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from api.app import create_app
from api.deps import TemporalProvider
from settings import Settings
from systems.registry import build_systems
from tests.pg import db_engine, pg_url  # noqa: F401 - fixtures, found by pytest by name

ADMIN = "o2c_admin_api_tests_" + "x" * 24


def _client(tmp_path: Path, database_url: str | None = None) -> Iterator[TestClient]:
    settings = Settings(
        environment="test",
        data_dir=tmp_path,
        database_url=database_url,
        admin_key=ADMIN,
        sandbox=True,
        smtp_url="smtp://127.0.0.1:1",
    )
    systems = build_systems(settings)
    app = create_app(settings, systems, TemporalProvider("127.0.0.1:1", "default"))
    with TestClient(app, raise_server_exceptions=False) as c:
        c.headers["Authorization"] = f"Bearer {ADMIN}"
        yield c


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    yield from _client(tmp_path)


@pytest.fixture
def client_any_db(db_engine: Engine, tmp_path: Path) -> Iterator[TestClient]:  # noqa: F811
    """The API over an emptied database of each kind (``db_engine``'s)."""
    yield from _client(tmp_path, db_engine.url.render_as_string(hide_password=False))


def key(client: TestClient, role: str) -> str:
    r = client.post("/v1/api-keys", json={"name": f"{role}-key", "role": role})
    assert r.status_code == 201, r.text
    return str(r.json()["key"])
