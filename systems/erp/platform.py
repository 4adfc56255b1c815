"""Platform records kept beside the ERP: process read models, API keys, idempotency
records, test clocks and sandbox fault modes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import bindparam, delete, text
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from domain.errors import Conflict, NotFound
from systems.db import insert_for, read_connection, unit_of_work, utcnow, write_connection
from systems.erp.common import ErpBase, require
from systems.erp.tables import (
    ApiKeyRow,
    ClockProcessRow,
    ClockRow,
    DocumentRow,
    FaultRow,
    IdempotencyRow,
)
from systems.ids import new_id
from systems.records import IDEMPOTENCY_PENDING as PENDING
from systems.records import ApiKey, Fault, FaultMode, Role, SystemName, TestClock

SYSTEMS: tuple[SystemName, ...] = ("erp", "payments", "notifications")


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


_DOCUMENTS = DocumentRow.__table__  # type: ignore[attr-defined]
_FAULTS = FaultRow.__table__  # type: ignore[attr-defined]
_CLOCK_PROCESSES = ClockProcessRow.__table__  # type: ignore[attr-defined]
_DOCUMENT_BODY = select(_DOCUMENTS.c.body).where(
    _DOCUMENTS.c.kind == bindparam("kind"), _DOCUMENTS.c.doc_id == bindparam("doc_id")
)


@cache
def _save_document(dialect_name: str, only_new: bool) -> Any:
    """The read-model upsert, built once per dialect (building one costs more than running
    it): insert, and on a conflict replace the body, or with ``only_new`` leave it."""
    columns = ("kind", "doc_id", "customer_id", "body", "updated_at")
    stmt = insert_for(dialect_name, _DOCUMENTS).values({c: bindparam(c) for c in columns})
    if only_new:
        return stmt.on_conflict_do_nothing(index_elements=["kind", "doc_id"])
    return stmt.on_conflict_do_update(
        index_elements=["kind", "doc_id"],
        set_={"body": stmt.excluded.body, "updated_at": stmt.excluded.updated_at},
    )


class PlatformMixin(ErpBase):
    def save_document(
        self,
        kind: str,
        doc_id: str,
        customer_id: str,
        body: dict[str, Any],
        *,
        only_new: bool = False,
    ) -> bool:
        """Write a read model in one statement: replace it, or with ``only_new`` only if
        none exists yet (a starter's first version never overwrites what its process wrote
        since). True when the row was written."""
        params = {
            "kind": kind,
            "doc_id": doc_id,
            "customer_id": customer_id,
            "body": body,
            "updated_at": utcnow(),
        }
        with write_connection(self._engine) as conn:
            stmt = _save_document(self._engine.dialect.name, only_new)
            return bool(conn.execute(stmt, params).rowcount)

    def get_document(self, kind: str, doc_id: str) -> dict[str, Any]:
        # The API's hottest read (clients poll it): one Core statement, no ORM session.
        with read_connection(self._engine) as conn:
            body = conn.execute(_DOCUMENT_BODY, {"kind": kind, "doc_id": doc_id}).scalar()
        if body is None:
            raise NotFound(kind, doc_id)
        return dict(body)

    def list_documents(self, kind: str, customer_id: str) -> list[dict[str, Any]]:
        with unit_of_work(self._engine, read=True) as s:
            rows = s.exec(
                select(DocumentRow)
                .where(DocumentRow.kind == kind, DocumentRow.customer_id == customer_id)
                .order_by(col(DocumentRow.doc_id))
            ).all()
            return [dict(r.body or {}) for r in rows]

    def create_api_key(self, name: str, role: Role) -> tuple[ApiKey, str]:
        """A new key; only its hash is stored, the secret is returned once."""
        secret = f"o2c_{role}_{secrets.token_urlsafe(24)}"
        row = ApiKeyRow(
            id=new_id("key"), name=name, role=role, prefix=secret[:12], secret_hash=_hash(secret)
        )
        with unit_of_work(self._engine) as s:
            s.add(row)
            s.flush()
            return ApiKey.model_validate(row, from_attributes=True), secret

    def authenticate(self, secret: str) -> ApiKey | None:
        digest = _hash(secret)
        with unit_of_work(self._engine, read=True) as s:
            row = s.exec(select(ApiKeyRow).where(ApiKeyRow.secret_hash == digest)).first()
            if row is None or not hmac.compare_digest(row.secret_hash, digest):
                return None
            return ApiKey.model_validate(row, from_attributes=True)

    def idempotency_get(self, scope: str, key: str) -> tuple[str, int, str] | None:
        with unit_of_work(self._engine, read=True) as s:
            row = s.get(IdempotencyRow, (scope, key))
            return (row.request_hash, row.status, row.body) if row else None

    def idempotency_put(
        self, scope: str, key: str, request_hash: str, status: int, body: str
    ) -> tuple[str, int, str]:
        try:
            with unit_of_work(self._engine) as s:
                s.add(
                    IdempotencyRow(
                        scope=scope, key=key, request_hash=request_hash, status=status, body=body
                    )
                )
            return request_hash, status, body
        except IntegrityError:
            stored = self.idempotency_get(scope, key)
            assert stored is not None
            return stored

    def idempotency_claim(
        self, scope: str, key: str, request_hash: str, stale_after: timedelta
    ) -> tuple[str, int, str] | None:
        try:
            with unit_of_work(self._engine) as s:
                row = s.get(IdempotencyRow, (scope, key), with_for_update=True)
                if row is None:
                    s.add(
                        IdempotencyRow(
                            scope=scope, key=key, request_hash=request_hash, status=0, body=""
                        )
                    )
                    return None
                now = utcnow()
                if row.status == PENDING and row.created_at < now - stale_after:
                    row.request_hash, row.created_at = request_hash, now
                    s.add(row)
                    return None
                return row.request_hash, row.status, row.body
        except IntegrityError:  # a concurrent claim of the same key won
            stored = self.idempotency_get(scope, key)
            assert stored is not None
            return stored

    def idempotency_complete(
        self, scope: str, key: str, status: int, body: str
    ) -> tuple[str, int, str]:
        with unit_of_work(self._engine) as s:
            row = require(s, IdempotencyRow, (scope, key), "idempotency key", lock=True)
            if row.status == PENDING:
                row.status, row.body = status, body
                s.add(row)
            return row.request_hash, row.status, row.body

    def idempotency_release(self, scope: str, key: str) -> None:
        with unit_of_work(self._engine) as s:
            row = s.get(IdempotencyRow, (scope, key), with_for_update=True)
            if row is not None and row.status == PENDING:
                s.delete(row)

    def create_clock(self, frozen_time: datetime) -> TestClock:
        with unit_of_work(self._engine) as s:
            row = ClockRow(id=new_id("clk"), frozen_time=frozen_time)
            s.add(row)
            s.flush()
            return TestClock.model_validate(row, from_attributes=True)

    def get_clock(self, clock_id: str) -> TestClock:
        with unit_of_work(self._engine, read=True) as s:
            return TestClock.model_validate(
                require(s, ClockRow, clock_id, "test clock"), from_attributes=True
            )

    def advance_clock(self, clock_id: str, frozen_time: datetime) -> TestClock:
        """Move the clock forward (never back) and mark it advancing. An advance to the
        time the clock already reads is a retry: the clock is answered as it is."""
        with unit_of_work(self._engine) as s:
            row = require(s, ClockRow, clock_id, "test clock", lock=True)
            if frozen_time == row.frozen_time:
                return TestClock.model_validate(row, from_attributes=True)
            if frozen_time < row.frozen_time:
                raise Conflict(f"test clock is at {row.frozen_time.isoformat()}: only forward")
            row.frozen_time, row.status = frozen_time, "advancing"
            s.add(row)
            return TestClock.model_validate(row, from_attributes=True)

    def mark_clock_ready(self, clock_id: str, seen: datetime) -> TestClock:
        """``ready`` if the clock still reads ``seen``, the time its processes were found
        settled at: an advance since then keeps it ``advancing``. The clock as it is."""
        with unit_of_work(self._engine) as s:
            row = require(s, ClockRow, clock_id, "test clock", lock=True)
            if row.status == "advancing" and row.frozen_time == seen:
                row.status = "ready"
                s.add(row)
            return TestClock.model_validate(row, from_attributes=True)

    def register_clock_process(self, clock_id: str, process_id: str) -> None:
        """Record that ``process_id`` lives on the clock, before it is started; a retried
        start renews the time (the grace a process not yet started gets runs from it)."""
        now = utcnow()
        stmt = insert_for(self._engine.dialect.name, _CLOCK_PROCESSES).values(
            clock_id=clock_id, process_id=process_id, registered_at=now
        )
        renew = stmt.on_conflict_do_update(
            index_elements=["clock_id", "process_id"], set_={"registered_at": now}
        )
        with write_connection(self._engine) as conn:
            conn.execute(renew)

    def clock_processes(self, clock_id: str) -> dict[str, datetime]:
        """The processes registered on the clock that have not been found ended, each with
        the time it was registered."""
        c = _CLOCK_PROCESSES.c
        query = sa_select(c.process_id, c.registered_at).where(c.clock_id == clock_id)
        with read_connection(self._engine) as conn:
            return {row.process_id: row.registered_at for row in conn.execute(query)}

    def forget_clock_processes(self, clock_id: str, process_ids: list[str]) -> None:
        """Drop processes found ended from the clock's register."""
        if not process_ids:
            return
        c = _CLOCK_PROCESSES.c
        with write_connection(self._engine) as conn:
            conn.execute(
                delete(_CLOCK_PROCESSES).where(
                    c.clock_id == clock_id, c.process_id.in_(process_ids)
                )
            )

    def set_fault(self, system: SystemName, mode: FaultMode) -> Fault:
        stmt = insert_for(self._engine.dialect.name, _FAULTS).values(system=system, mode=mode)
        upsert = stmt.on_conflict_do_update(index_elements=["system"], set_={"mode": mode})
        with write_connection(self._engine) as conn:
            conn.execute(upsert)  # concurrent first settings of a system: no key conflict
        return Fault(system=system, mode=mode)

    def ping(self) -> None:
        with self._engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def faults(self) -> list[Fault]:
        with unit_of_work(self._engine, read=True) as s:
            modes = {r.system: r.mode for r in s.exec(select(FaultRow))}
            return [Fault(system=x, mode=modes.get(x, "ok")) for x in SYSTEMS]
