"""Helpers shared by the embedded ERP's parts: the base class, paging, amount checks."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, col, select

from domain.errors import InvalidInput, NotFound
from domain.money import is_exact, quantize

R = TypeVar("R", bound=SQLModel)
MAX_LIMIT = 100


class ErpBase:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine


def require(session: Session, model: type[R], key: Any, kind: str, *, lock: bool = False) -> R:
    """The row of ``model`` at ``key`` (``NotFound`` if none). ``lock`` for a row the
    transaction will change from what it read: on PostgreSQL it is locked (``FOR UPDATE``)
    until the commit, so concurrent changes queue instead of overwriting each other;
    SQLite's writers are already one at a time."""
    row = session.get(model, key, with_for_update=lock, populate_existing=lock)
    if row is None:
        raise NotFound(kind, str(key))
    return row


def exact(amount: Decimal, currency: str, what: str) -> Decimal:
    """Refuse an amount with digits below the currency's minor unit; return it written to
    exactly that unit ("1000" and "1E+3" EUR are kept as 1000.00)."""
    if not is_exact(amount, currency):
        raise InvalidInput(f"{what} {amount} has more decimals than {currency} allows")
    return quantize(amount, currency)


def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    if not cursor or not all(c.isalnum() or c in "-_" for c in cursor):
        raise InvalidInput("invalid cursor", ("query", "cursor"))
    try:
        value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("invalid cursor", ("query", "cursor")) from exc
    if not value.isprintable():  # every cursor this API hands out encodes a printable id
        raise InvalidInput("invalid cursor", ("query", "cursor"))
    return value


def page_query(
    session: Session, model: type[R], filters: Sequence[Any], limit: int, cursor: str | None
) -> tuple[list[R], str | None]:
    """Rows ordered by id after ``cursor``; the next cursor when more remain (refused by
    any other list)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}")
    id_col = col(model.id)  # type: ignore[attr-defined]
    # A cursor names its list, so one list's cursor is refused by another.
    scope = f"{model.__tablename__}:"
    query = select(model).where(*filters).order_by(id_col).limit(limit + 1)
    if cursor:
        value = decode_cursor(cursor)
        if not value.startswith(scope):
            raise InvalidInput("this cursor was not handed out by this list", ("query", "cursor"))
        query = query.where(id_col > value.removeprefix(scope))
    rows = list(session.exec(query))
    more = len(rows) > limit
    rows = rows[:limit]
    if not more:
        return rows, None
    return rows, encode_cursor(scope + rows[-1].id)  # type: ignore[attr-defined]
