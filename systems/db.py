"""Database plumbing shared by the embedded systems: engine, schema, unit of work, types.

SQLite (the default) runs in WAL mode with a busy timeout and ``BEGIN IMMEDIATE`` so
writers queue instead of failing; PostgreSQL runs through psycopg. Money is stored as text
(``DecimalText``) so a Decimal comes back exactly as written on every backend.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import String, Table, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.types import DateTime, TypeDecorator
from sqlmodel import Session, SQLModel, create_engine

TABLE_MODULES = ("systems.erp.tables", "systems.payments.tables", "systems.notify.tables")


class DecimalText(TypeDecorator[Decimal]):
    """A Decimal stored as its exact text (SQLite's NUMERIC would go through float)."""

    impl = String(40)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Any) -> str | None:
        return None if value is None else format(Decimal(value), "f")

    def process_result_value(self, value: str | None, dialect: Any) -> Decimal | None:
        return None if value is None else Decimal(value)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops tzinfo)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and immediate transactions."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        pool_size=20,
        max_overflow=20,
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        # Writers take the write lock up front (no deadlock on lock upgrade); readers use a
        # plain BEGIN, which WAL lets run beside a writer.
        read = conn.get_execution_options().get("o2c_read", False)
        conn.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")

    return engine


def insert_for(dialect_name: str, table: Table) -> Any:
    """An INSERT on ``table`` that can say ``on_conflict_do_nothing`` / ``_do_update``
    (SQLite and PostgreSQL spell it alike)."""
    return (sqlite.insert if dialect_name == "sqlite" else postgresql.insert)(table)


# The PostgreSQL advisory lock o2c's processes take to create the schema one at a time.
SCHEMA_LOCK = 0x02C5C4E3A


def create_schema(engine: Engine) -> None:
    """Create every o2c table that does not exist yet, one process at a time: replicas
    starting together on an empty database would otherwise race on the same CREATEs
    (SQLite's immediate transaction serialises them; PostgreSQL takes an advisory lock)."""
    for name in TABLE_MODULES:
        importlib.import_module(name)
    with _writer_turn(engine), engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": SCHEMA_LOCK})
        SQLModel.metadata.create_all(conn)


@cache
def _reader(engine: Engine) -> Engine:
    """``engine`` marked for read-only transactions (made once: each copy costs)."""
    return engine.execution_options(o2c_read=True)


@cache
def _writer_turn(engine: Engine) -> AbstractContextManager[object]:
    """Writers of one process take turns on SQLite before they ask for its write lock.

    SQLite admits one writer; the others poll with sleeps of up to 100 ms, so under load a
    write could wait many times longer than the writes ahead of it took. Queueing on a lock
    here hands the database over as soon as it is free. Other databases lock rows."""
    return threading.RLock() if engine.dialect.name == "sqlite" else nullcontext()


@contextmanager
def read_connection(engine: Engine) -> Iterator[Connection]:
    """A connection for one read-only transaction, without an ORM session (hot reads)."""
    with _reader(engine).connect() as conn, conn.begin():
        yield conn


@contextmanager
def write_connection(engine: Engine) -> Iterator[Connection]:
    """A connection for one writing transaction of Core statements, without an ORM session
    (hot writes); commits on success, rolls back on any error."""
    with _writer_turn(engine), engine.connect() as conn, conn.begin():
        yield conn


@contextmanager
def unit_of_work(engine: Engine, read: bool = False) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error.

    ``read=True`` marks a transaction that only reads (on SQLite it does not queue behind
    writers)."""
    bind = _reader(engine) if read else engine
    with (
        nullcontext() if read else _writer_turn(engine),
        Session(bind, expire_on_commit=False) as session,
    ):
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
