"""The API over a temp SQLite ERP with Temporal unreachable (nothing here needs it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.deps import TemporalProvider
from settings import Settings
from systems.registry import build_systems

ADMIN = "o2c_admin_api_tests_" + "x" * 24


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        environment="test",
        data_dir=tmp_path,
        admin_key=ADMIN,
        sandbox=True,
        smtp_url="smtp://127.0.0.1:1",
    )
    systems = build_systems(settings)
    app = create_app(settings, systems, TemporalProvider("127.0.0.1:1", "default"))
    with TestClient(app, raise_server_exceptions=False) as c:
        c.headers["Authorization"] = f"Bearer {ADMIN}"
        yield c


def key(client: TestClient, role: str) -> str:
    r = client.post("/v1/api-keys", json={"name": f"{role}-key", "role": role})
    assert r.status_code == 201, r.text
    return str(r.json()["key"])
