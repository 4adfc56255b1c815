"""Inventory: on hand, reserved, available; keyed reservations; the backorder wait list."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from domain.errors import Conflict, InvalidInput, OutOfStock
from systems.db import unit_of_work, write_connection
from systems.erp.common import ErpBase, require
from systems.erp.tables import BackorderRow, ReservationRow, StockRow
from systems.records import MAX_STOCK, Inventory


def _inventory(row: StockRow) -> Inventory:
    return Inventory(
        sku=row.sku,
        on_hand=row.on_hand,
        reserved=row.reserved,
        available=row.on_hand - row.reserved,
    )


_BACKORDERS = BackorderRow.__table__  # type: ignore[attr-defined]


class StockMixin(ErpBase):
    def inventory(self, sku: str) -> Inventory:
        with unit_of_work(self._engine, read=True) as s:
            return _inventory(require(s, StockRow, sku, "inventory"))

    def adjust_inventory(self, sku: str, delta: int, reason: str) -> Inventory:
        """Change stock on hand; it may never drop below what is reserved."""
        with unit_of_work(self._engine) as s:
            row = require(s, StockRow, sku, "inventory", lock=True)
            if row.on_hand + delta < row.reserved:
                raise Conflict(
                    f"{sku}: on hand would be {row.on_hand + delta}, below reserved {row.reserved}"
                )
            if row.on_hand + delta > MAX_STOCK:
                raise Conflict(f"{sku}: on hand would be {row.on_hand + delta}, above {MAX_STOCK}")
            row.on_hand += delta
            s.add(row)
            return _inventory(row)

    def reserve(self, key: str, order_id: str, lines: dict[str, int]) -> None:
        """Reserve every line or none; the same key again changes nothing."""
        if any(q <= 0 for q in lines.values()):
            raise InvalidInput("reserved quantities must be positive")
        with unit_of_work(self._engine) as s:
            # Locked in SKU order, as everywhere, so no two transactions deadlock; the key
            # is checked after: a concurrent call with the same key has committed by then.
            rows = {sku: require(s, StockRow, sku, "inventory", lock=True) for sku in sorted(lines)}
            if s.get(ReservationRow, key) is not None:
                return
            short = {
                sku: q - (rows[sku].on_hand - rows[sku].reserved)
                for sku, q in lines.items()
                if rows[sku].on_hand - rows[sku].reserved < q
            }
            if short:
                raise OutOfStock(short)
            for sku, q in lines.items():
                rows[sku].reserved += q
                s.add(rows[sku])
            s.add(ReservationRow(key=key, order_id=order_id, lines=dict(lines)))

    @staticmethod
    def _settle(s: Session, res: ReservationRow, to: str) -> None:
        """Turn an active reservation ``released`` or ``committed`` (the goods left)."""
        for sku, q in sorted((res.lines or {}).items()):
            row = require(s, StockRow, sku, "inventory", lock=True)
            row.reserved -= q
            if to == "committed":
                row.on_hand -= q
            s.add(row)
        res.status = to
        s.add(res)

    def release(self, key: str) -> list[str]:
        """Free an active reservation (no-op when committed or unknown). Returns the
        processes waiting for its SKUs (released now or before, so a repeat whose answer was
        lost names them again), which the caller wakes: the stock freed may be theirs. They
        stay on the wait list (a woken process registers again anyway)."""
        with unit_of_work(self._engine) as s:
            res = s.get(ReservationRow, key, with_for_update=True)
            if res is None or res.status == "committed":
                return []
            if res.status == "active":
                self._settle(s, res, "released")
            waiting = select(_BACKORDERS.c.id, _BACKORDERS.c.process_id).where(
                _BACKORDERS.c.sku.in_(sorted(res.lines or {}))
            )
            woken: list[str] = []
            for _, process_id in sorted(s.connection().execute(waiting)):
                if process_id not in woken:
                    woken.append(process_id)
            return woken

    def commit_reservation(
        self, key: str, lines: dict[str, int] | None = None, order_id: str = ""
    ) -> None:
        """The goods left: deduct the reserved units from stock on hand, once.

        With no reservation under ``key`` (an operator skipped the reservation step), the
        shipped ``lines`` are deducted from the stock not reserved for others and recorded
        under the key, so a repeat (or a concurrent twin, whose insert of the key fails)
        deducts nothing more; more than that stock is a ``Conflict`` (correct the count
        first)."""
        if lines and any(q <= 0 for q in lines.values()):
            raise InvalidInput("shipped quantities must be positive")
        with unit_of_work(self._engine) as s:
            res = s.get(ReservationRow, key, with_for_update=True)
            if res is not None:
                if res.status == "active":
                    self._settle(s, res, "committed")
                return
            if not lines:
                return
            rows = {sku: require(s, StockRow, sku, "inventory", lock=True) for sku in sorted(lines)}
            short = {
                sku: q - (row.on_hand - row.reserved)
                for sku, q in lines.items()
                if (row := rows[sku]).on_hand - row.reserved < q
            }
            if short:
                named = ", ".join(f"{sku} short by {n}" for sku, n in sorted(short.items()))
                raise Conflict(f"shipped without a reservation, beyond the stock: {named}")
            for sku, q in lines.items():
                rows[sku].on_hand -= q
                s.add(rows[sku])
            s.add(ReservationRow(key=key, order_id=order_id, status="committed", lines=lines))

    def add_backorder(self, process_id: str, skus: list[str]) -> None:
        for sku in skus:
            try:
                with unit_of_work(self._engine) as s:
                    exists = s.exec(
                        select(BackorderRow).where(
                            BackorderRow.process_id == process_id, BackorderRow.sku == sku
                        )
                    ).first()
                    if exists is None:
                        s.add(BackorderRow(process_id=process_id, sku=sku))
            except IntegrityError:
                continue  # a concurrent call added it

    def take_backorders(self, sku: str) -> list[str]:
        """Remove and return the processes waiting for ``sku``, oldest first; concurrent
        callers each get a process at most once (one DELETE ... RETURNING)."""
        taken = delete(_BACKORDERS).where(_BACKORDERS.c.sku == sku)
        with write_connection(self._engine) as conn:
            rows = conn.execute(taken.returning(_BACKORDERS.c.id, _BACKORDERS.c.process_id))
            return [process_id for _, process_id in sorted(rows)]
