"""The sandbox card gateway: real tokens, idempotent charges, and API.md's test cards.

State lives in the database so the API tokenises and a worker charges the same token. The
card number is never stored, nor anything derived from it that could be reversed: only the
brand, last four digits and the *behaviour* of the test card. Charges and refunds are
unique per idempotency key; the 0259 card takes the money on its first attempt and then
times out, so a retry with the same key must find that charge instead of charging again.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.engine import Engine
from sqlmodel import select

from domain.errors import CardDeclined, Conflict, InvalidInput, SystemUnavailable
from domain.money import is_exact
from systems.db import insert_for, unit_of_work, utcnow
from systems.ids import new_id
from systems.payments.tables import AttemptRow, ChargeRow, RefundRow, TokenRow
from systems.records import GatewayCharge

BEHAVIOURS = {
    "4242424242424242": "succeeds",
    "4000000000000002": "declines:card_declined",
    "4000000000009995": "declines:insufficient_funds",
    "4000000000000119": "flaky",
    "4000000000000259": "timeout",
}


@dataclass(frozen=True)
class Token:
    token: str
    brand: str
    last4: str


def luhn_ok(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def brand_of(number: str) -> str:
    if number.startswith("4"):
        return "visa"
    if number[:2] in {"34", "37"}:
        return "amex"
    if 51 <= int(number[:2]) <= 55 or 2221 <= int(number[:4]) <= 2720:
        return "mastercard"
    if number.startswith(("6011", "65")):
        return "discover"
    return "unknown"


_CHARGES = ChargeRow.__table__  # type: ignore[attr-defined]
_ATTEMPTS = AttemptRow.__table__  # type: ignore[attr-defined]


@cache
def _count_attempt(dialect_name: str) -> Any:
    """Add one to the attempts of a key (the first makes its row); the new count."""
    stmt = insert_for(dialect_name, _ATTEMPTS).values(key=bindparam("attempt_key"), attempts=1)
    return stmt.on_conflict_do_update(
        index_elements=["key"], set_={"attempts": _ATTEMPTS.c.attempts + 1}
    ).returning(_ATTEMPTS.c.attempts)


class SandboxGateway:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def tokenize(self, card_number: str, exp_month: int, exp_year: int, cvc: str) -> Token:
        """A token for a valid, unexpired card; raises ``InvalidInput`` otherwise."""
        number = card_number.replace(" ", "")
        if not (number.isdigit() and 12 <= len(number) <= 19 and luhn_ok(number)):
            raise InvalidInput("card number is not valid")
        now = datetime.now(UTC)
        if (exp_year, exp_month) < (now.year, now.month):
            raise InvalidInput("card has expired")
        if not (cvc.isdigit() and len(cvc) in (3, 4)):
            raise InvalidInput("cvc is not valid")
        return await asyncio.to_thread(self._store_token, number)

    def _store_token(self, number: str) -> Token:
        with unit_of_work(self._engine) as s:
            row = TokenRow(
                token=new_id("tok"),
                behaviour=BEHAVIOURS.get(number, "succeeds"),
                brand=brand_of(number),
                last4=number[-4:],
            )
            s.add(row)
            return Token(token=row.token, brand=row.brand, last4=row.last4)

    async def charge(
        self, key: str, token: str, amount: Decimal, currency: str, description: str
    ) -> str:
        """Charge once per ``key``; see the module docstring for the test cards."""
        if amount <= 0 or not is_exact(amount, currency):
            raise InvalidInput(f"cannot charge {amount} {currency}")
        return await asyncio.to_thread(self._charge, key, token, amount, currency)

    def _charge(self, key: str, token: str, amount: Decimal, currency: str) -> str:
        """One transaction: count the attempt, find or make the charge of ``key``; the
        test card's failure, if any, is raised after the commit (a gateway that timed out
        had taken the money; a flaky one had counted the attempt)."""
        dialect = self._engine.dialect.name
        with unit_of_work(self._engine) as s:
            attempt = s.execute(_count_attempt(dialect), {"attempt_key": key}).scalar_one()
            tok = s.get(TokenRow, token)
            if tok is None:
                raise InvalidInput("unknown card token")
            found = s.get(ChargeRow, key)
            if found is not None and (found.amount, found.currency) != (amount, currency):
                # As real gateways do: a key names one request, never a different one.
                raise Conflict(f"idempotency key {key} was used for another charge")
            made = found is None and not (tok.behaviour == "flaky" and attempt <= 2)
            if made:
                code = tok.behaviour.split(":", 1)[1] if ":" in tok.behaviour else None
                s.execute(
                    insert_for(dialect, _CHARGES)
                    .values(
                        key=key,
                        charge_id=new_id("ch"),
                        token=token,
                        amount=amount,
                        currency=currency,
                        status="declined" if code else "succeeded",
                        decline_code=code,
                        refunded=Decimal(0),
                        created_at=utcnow(),
                    )
                    .on_conflict_do_nothing(index_elements=["key"])
                )
                found = s.get(ChargeRow, key)
        if found is None:
            raise SystemUnavailable("payments", "gateway error")
        if made and tok.behaviour == "timeout" and attempt == 1:
            raise SystemUnavailable("payments", "timeout: no answer from the gateway")
        return self._answer(found)

    @staticmethod
    def _answer(row: ChargeRow) -> str:
        if row.status == "declined":
            raise CardDeclined(row.decline_code or "card_declined")
        return row.charge_id

    async def refund(self, key: str, charge_id: str, amount: Decimal) -> str:
        return await asyncio.to_thread(self._refund, key, charge_id, amount)

    def _refund(self, key: str, charge_id: str, amount: Decimal) -> str:
        with unit_of_work(self._engine) as s:
            query = select(ChargeRow).where(ChargeRow.charge_id == charge_id)
            charge = s.exec(query.with_for_update()).first()  # then the key, under the lock
            found = s.get(RefundRow, key)
            if found is not None:
                return found.refund_id
            if charge is None or charge.status != "succeeded":
                raise Conflict(f"no successful charge {charge_id}")
            if amount <= 0 or amount > charge.amount - charge.refunded:
                raise Conflict(f"cannot refund {amount} of {charge_id}")
            charge.refunded += amount
            row = RefundRow(key=key, refund_id=new_id("re"), charge_id=charge_id, amount=amount)
            s.add_all([charge, row])
            return row.refund_id

    async def succeeded_charge(self, key: str) -> GatewayCharge | None:
        def find() -> GatewayCharge | None:
            with unit_of_work(self._engine, read=True) as s:
                row = s.get(ChargeRow, key)
                if row is None or row.status != "succeeded":
                    return None
                return GatewayCharge(
                    charge_id=row.charge_id, amount=row.amount, refunded=row.refunded
                )

        return await asyncio.to_thread(find)

    async def charges_for_key(self, key: str) -> int:
        def count() -> int:
            with unit_of_work(self._engine) as s:
                row = s.get(ChargeRow, key)
                return 1 if row is not None and row.status == "succeeded" else 0

        return await asyncio.to_thread(count)

    async def charge_count(self, token: str) -> int:
        """Successful charges on ``token`` (for audits and tests)."""

        def count() -> int:
            with unit_of_work(self._engine) as s:
                rows = s.exec(
                    select(ChargeRow).where(
                        ChargeRow.token == token, ChargeRow.status == "succeeded"
                    )
                ).all()
                return len(rows)

        return await asyncio.to_thread(count)
