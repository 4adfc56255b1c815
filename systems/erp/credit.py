"""A customer's credit position, and the commitments that hold its accepted orders in it.

Exposure is open AR plus open orders: the value of every accepted order that its invoices
have not yet consumed. A credit check that passes commits the order's total in the same
transaction as it reads the position, so two orders checked at once cannot both take the
last of a limit; the commitment is consumed as the order is invoiced and released when the
order is cancelled (or completes with part of it never invoiced).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal

from sqlalchemy import and_, bindparam
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, select

from domain.credit import check_credit
from domain.errors import CurrencyMismatch
from domain.money import quantize
from systems.db import read_connection, unit_of_work
from systems.erp.catalog import HAS_METHOD, read_customer
from systems.erp.common import ErpBase, exact, require
from systems.erp.tables import CreditCommitmentRow, CustomerRow, InvoiceRow
from systems.records import Account, CreditCommitment, CreditView, Customer

_INVOICES = InvoiceRow.__table__  # type: ignore[attr-defined]
_COMMITMENTS = CreditCommitmentRow.__table__  # type: ignore[attr-defined]
# The hot reads of every credit check as prebuilt Core statements (no ORM objects).
_OPEN_INVOICES = select(
    _INVOICES.c.total, _INVOICES.c.amount_paid, _INVOICES.c.amount_credited, _INVOICES.c.due_date
).where(_INVOICES.c.customer_id == bindparam("customer_id"), _INVOICES.c.status == "open")
# Each active commitment with the invoices issued for its order so far (one row per
# invoice; a NULL total when none is).
_COMMITTED = (
    select(_COMMITMENTS.c.key, _COMMITMENTS.c.amount, _INVOICES.c.total)
    .select_from(
        _COMMITMENTS.outerjoin(
            _INVOICES,
            and_(
                _INVOICES.c.order_id == _COMMITMENTS.c.order_id,
                _INVOICES.c.customer_id == _COMMITMENTS.c.customer_id,
                _INVOICES.c.status != "void",
            ),
        )
    )
    .where(
        _COMMITMENTS.c.customer_id == bindparam("customer_id"), _COMMITMENTS.c.status == "active"
    )
)


def _open_orders(conn: Connection, customer_id: str, leave_out: str | None) -> Decimal:
    """What the customer's active commitments (but ``leave_out``'s) hold: each one's
    amount less what its order's invoices have consumed, never below zero."""
    amounts: dict[str, Decimal] = {}
    invoiced: defaultdict[str, Decimal] = defaultdict(Decimal)
    for key, amount, total in conn.execute(_COMMITTED, {"customer_id": customer_id}):
        amounts[key] = amount
        if total is not None:
            invoiced[key] += total
    held = Decimal(0)
    for key, amount in amounts.items():
        if key != leave_out:
            held += max(amount - invoiced[key], Decimal(0))
    return held


def _account(conn: Connection, c: Customer, as_of: date, leave_out: str | None = None) -> Account:
    """Open AR, its overdue part, open orders and the credit left, summed exactly.

    Open orders are read first: an invoice issued between the two reads (PostgreSQL reads
    each statement's own snapshot) is then counted twice, never missed."""
    open_orders = _open_orders(conn, c.id, leave_out)
    rows = conn.execute(_OPEN_INVOICES, {"customer_id": c.id}).all()
    due = [(total - paid - credited, due_date) for total, paid, credited, due_date in rows]
    open_ar = sum((d for d, _ in due), Decimal(0))
    overdue = sum((d for d, when in due if when < as_of), Decimal(0))
    cur = c.currency
    return Account(
        open_ar=quantize(open_ar, cur),
        overdue=quantize(overdue, cur),
        open_orders=quantize(open_orders, cur),
        credit_available=quantize(max(c.credit_limit - open_ar - open_orders, Decimal(0)), cur),
    )


def _view(conn: Connection, customer_id: str, as_of: date, leave_out: str | None) -> CreditView:
    c = read_customer(conn, customer_id)
    has_method = conn.execute(HAS_METHOD, {"customer_id": customer_id}).first()
    return CreditView(
        customer=c,
        account=_account(conn, c, as_of, leave_out),
        has_payment_method=bool(has_method),
    )


def settle_commitment(s: Session, order_id: str) -> None:
    """Mark the order's commitment ``invoiced`` once its invoices have consumed all of it
    (called as each is issued, in its transaction), so credit checks read only the
    commitments still holding something, however many orders a customer has had."""
    row = s.exec(
        select(CreditCommitmentRow)
        .where(
            col(CreditCommitmentRow.order_id) == order_id,
            col(CreditCommitmentRow.status) == "active",
        )
        .with_for_update()
    ).first()
    if row is None:
        return
    invoiced = s.connection().execute(
        select(_INVOICES.c.total).where(
            _INVOICES.c.order_id == order_id,
            _INVOICES.c.customer_id == row.customer_id,
            _INVOICES.c.status != "void",
        )
    )
    if sum((total for (total,) in invoiced), Decimal(0)) >= row.amount:
        row.status = "invoiced"
        s.add(row)


class CreditMixin(ErpBase):
    def credit_view(self, customer_id: str, as_of: date) -> CreditView:
        """The customer, its account and whether it has a card, as of one moment."""
        with read_connection(self._engine) as conn:
            return _view(conn, customer_id, as_of, None)

    def commit_credit(
        self,
        key: str,
        customer_id: str,
        order_id: str,
        amount: Decimal,
        currency: str,
        as_of: date,
        *,
        force: bool = False,
    ) -> CreditCommitment:
        """Check ``amount`` against the customer's credit position and, when it fits (or
        ``force``: an operator released the hold), commit it under ``key`` — in one
        transaction, one check per customer at a time. The same key again answers that it
        is committed and changes nothing."""
        with unit_of_work(self._engine) as s:
            # The customer row is the lock every check of its credit queues on.
            require(s, CustomerRow, customer_id, "customer", lock=True)
            view = _view(s.connection(), customer_id, as_of, key)
            if view.customer.currency != currency:
                raise CurrencyMismatch(view.customer.currency, currency)
            amount = exact(amount, currency, "amount")
            account = view.account
            decision = check_credit(
                account.open_ar, amount, view.customer.credit_limit, account.open_orders
            )
            existing = s.get(CreditCommitmentRow, key)
            if existing is not None:  # committed before (a retry): the same answer
                committed = True
            elif decision.approved or force:
                s.add(
                    CreditCommitmentRow(
                        key=key,
                        customer_id=customer_id,
                        order_id=order_id,
                        amount=amount,
                        currency=currency,
                    )
                )
                committed = True
            else:
                committed = False
            return CreditCommitment(view=view, decision=decision, committed=committed)

    def release_credit(self, key: str) -> None:
        """Stop counting a commitment against the limit (unknown or released: no change)."""
        with unit_of_work(self._engine) as s:
            row = s.get(CreditCommitmentRow, key, with_for_update=True)
            if row is not None and row.status == "active":
                row.status = "released"
                s.add(row)
