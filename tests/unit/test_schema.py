"""Processes that start together on an empty database all get the schema.

A deployment starts its API and worker replicas at once; each creates the tables that do
not exist yet. Run as separate processes, as they would be, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

SCRIPT = "import sys; from systems.db import create_schema, make_engine; " + (
    "create_schema(make_engine(sys.argv[1]))"
)
REPLICAS = 6


def _empty_database(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    server: str = request.getfixturevalue("pg_url")
    name = f"fresh_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return server.rsplit("/", 1)[0] + f"/{name}"


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_replicas_starting_together_all_create_the_schema(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = _empty_database(kind, tmp_path, request)
    root = Path(__file__).resolve().parents[2]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT, url],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(REPLICAS)
    ]
    outputs = [p.communicate(timeout=120)[0].decode(errors="replace") for p in procs]
    assert [p.returncode for p in procs] == [0] * REPLICAS, "\n".join(outputs)
    engine = create_engine(url)
    assert {"erp_customers", "erp_invoices", "gw_charges"} <= set(inspect(engine).get_table_names())
    engine.dispose()
