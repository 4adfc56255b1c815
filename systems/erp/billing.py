"""Sales orders, invoices, payments, credit notes, refunds and the double-entry ledger.

Every change is idempotent by key (a unique column), and every money movement posts one
balanced ledger entry in the same transaction. Invoice numbers are gapless per year: they
come from a counter row locked in the transaction that inserts the invoice.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from domain.errors import Conflict, InvalidInput, InvoiceNotPayable, NotFound, UnbalancedEntry
from domain.invoicing import DraftInvoice, InvoiceLine
from domain.money import EXACT, quantize, times
from systems.db import insert_for, unit_of_work, utcnow
from systems.erp.catalog import default_method
from systems.erp.common import ErpBase, exact, page_query, require
from systems.erp.credit import settle_commitment
from systems.erp.tables import (
    CounterRow,
    CreditNoteRow,
    CustomerRow,
    InvoiceRow,
    LedgerEntryRow,
    LedgerPostingRow,
    PaymentRow,
    RefundRow,
    SalesOrderRow,
)
from systems.ids import new_id
from systems.records import (
    ChargeView,
    CreditNote,
    Invoice,
    InvoiceStatus,
    LedgerEntry,
    LedgerPosting,
    Page,
    Payment,
    PaymentMethodKind,
    SalesOrder,
)

AR, REVENUE, TAX, CASH, RETURNS = (
    "accounts_receivable",
    "revenue",
    "tax_payable",
    "cash",
    "sales_returns",
)
ZERO = Decimal(0)
Posting = tuple[str, Decimal, Decimal]  # account, debit, credit


def _invoice(row: InvoiceRow) -> Invoice:
    return Invoice(
        id=row.id,
        number=row.number,
        customer_id=row.customer_id,
        status=row.status,
        currency=row.currency,
        issue_date=row.issue_date,
        due_date=row.due_date,
        lines=[InvoiceLine.model_validate(x) for x in row.lines or []],
        subtotal=row.subtotal,
        discount=row.discount,
        tax=row.tax,
        total=row.total,
        amount_paid=quantize(row.amount_paid, row.currency),
        amount_credited=quantize(row.amount_credited, row.currency),
        # A void invoice asks for nothing (it was never paid or credited: see void_invoice).
        amount_due=quantize(
            ZERO
            if row.status == "void"
            else max(row.total - row.amount_paid - row.amount_credited, ZERO),
            row.currency,
        ),
        order_id=row.order_id,
        process_id=row.process_id,
        created_at=row.created_at,
    )


def _payment(row: PaymentRow) -> Payment:
    payment = Payment.model_validate(row, from_attributes=True)
    payment.refunded = quantize(payment.refunded, payment.currency)  # "0" is "0.00" EUR
    return payment


_ENTRIES = LedgerEntryRow.__table__  # type: ignore[attr-defined]
_POSTINGS = LedgerPostingRow.__table__  # type: ignore[attr-defined]
_COUNTERS = CounterRow.__table__  # type: ignore[attr-defined]
_BUMP = (
    update(_COUNTERS)
    .where(_COUNTERS.c.name == bindparam("counter"))
    .values(value=_COUNTERS.c.value + 1)
    .returning(_COUNTERS.c.value)
)


def post_entry(s: Session, key: str, memo: str, currency: str, postings: list[Posting]) -> None:
    """Write one balanced entry; an unbalanced one raises before anything is written."""
    debit = sum((d for _, d, _ in postings), ZERO)
    credit = sum((c for _, _, c in postings), ZERO)
    if debit != credit:
        raise UnbalancedEntry(f"entry {key}: debits {debit} != credits {credit}")
    entry_id = new_id("je")
    s.execute(
        insert(_ENTRIES).values(
            id=entry_id, key=key, memo=memo, currency=currency, created_at=utcnow()
        )
    )
    rows = [
        {"entry_id": entry_id, "account": a, "currency": currency, "debit": d, "credit": c}
        for a, d, c in postings
        if d or c
    ]
    if rows:  # an entry of zero amounts (a free invoice) has no postings
        s.execute(insert(_POSTINGS), rows)


def next_value(s: Session, name: str) -> int:
    """The next value of the gapless counter ``name``, taken in ``s``'s transaction.

    The UPDATE holds the counter's row (on SQLite, the write lock ``BEGIN IMMEDIATE``
    took) until the transaction ends: numbers follow commit order, and a transaction that
    rolls back gives its number back, so there is no gap. A missing counter is created
    first; a concurrent creator's row is used instead (no error, no second row)."""
    value = s.execute(_BUMP, {"counter": name}).scalar()
    if value is None:
        create = insert_for(s.get_bind().dialect.name, _COUNTERS).values(name=name, value=0)
        s.execute(create.on_conflict_do_nothing(index_elements=["name"]))
        value = s.execute(_BUMP, {"counter": name}).scalar_one()
    return int(value)


def _payments_where(s: Session, where: Any) -> list[Payment]:
    """Payments matching ``where``, oldest first."""
    query = select(PaymentRow).where(where)
    rows = s.exec(query.order_by(col(PaymentRow.created_at), col(PaymentRow.id))).all()
    return [_payment(r) for r in rows]


def _customer_currency(s: Session, customer_id: str) -> str:
    """The customer's currency (what a sales order or invoice must match); 404 if none."""
    query = select(CustomerRow.currency).where(CustomerRow.id == customer_id)
    currency = s.execute(query).scalar()
    if currency is None:
        raise NotFound("customer", customer_id)
    return str(currency)


class BillingMixin(ErpBase):
    # --- sales orders ---------------------------------------------------------------------

    def create_sales_order(
        self, key: str, order_id: str, customer_id: str, total: Decimal, currency: str
    ) -> SalesOrder:
        with unit_of_work(self._engine) as s:
            found = s.exec(select(SalesOrderRow).where(SalesOrderRow.key == key)).first()
            if found is not None:
                return SalesOrder.model_validate(found, from_attributes=True)
            _customer_currency(s, customer_id)
            number = next_value(s, "sales_order")
            row = SalesOrderRow(
                id=new_id("so"),
                key=key,
                erp_number=f"SO-{number:06d}",
                order_id=order_id,
                customer_id=customer_id,
                total=total,
                currency=currency,
            )
            s.add(row)
            s.flush()
            return SalesOrder.model_validate(row, from_attributes=True)

    def cancel_sales_order(self, key: str, order_id: str) -> SalesOrder:
        with unit_of_work(self._engine) as s:
            row = s.exec(select(SalesOrderRow).where(SalesOrderRow.order_id == order_id)).first()
            if row is None:
                raise Conflict(f"order {order_id} has no sales order")
            row.status = "cancelled"
            s.add(row)
            return SalesOrder.model_validate(row, from_attributes=True)

    # --- invoices -------------------------------------------------------------------------

    def issue_invoice(self, key: str, draft: DraftInvoice) -> Invoice:
        """Issue ``draft`` once per key: a gapless number, AR, and a ledger entry."""
        for amount in (draft.subtotal, draft.discount, draft.tax, draft.total):
            exact(amount, draft.currency, "invoice amount")
        for line in draft.lines:
            exact(line.amount, draft.currency, "invoice line amount")
        for attempt in range(3):
            try:
                return self._issue(key, draft)
            except IntegrityError:
                if attempt == 2:
                    raise
                # A concurrent call with the same key won: answer what it issued.
        raise AssertionError("unreachable")

    def _issue(self, key: str, draft: DraftInvoice) -> Invoice:
        with unit_of_work(self._engine) as s:
            found = s.exec(select(InvoiceRow).where(InvoiceRow.key == key)).first()
            if found is not None:
                return _invoice(found)
            currency = _customer_currency(s, draft.customer_id)
            if currency != draft.currency:
                raise InvalidInput(f"customer pays in {currency}, invoice is {draft.currency}")
            year = draft.issue_date.year
            number = next_value(s, f"invoice-{year}")
            row = InvoiceRow(
                id=new_id("inv"),
                key=key,
                number=f"INV-{year}-{number:06d}",
                customer_id=draft.customer_id,
                currency=draft.currency,
                issue_date=draft.issue_date,
                due_date=draft.due_date,
                lines=[x.model_dump(mode="json") for x in draft.lines],
                subtotal=draft.subtotal,
                discount=draft.discount,
                tax=draft.tax,
                total=draft.total,
                # Nothing is due on a free invoice: it is settled as it is issued.
                status="paid" if draft.total == 0 else "open",
                order_id=draft.order_id,
                process_id=draft.process_id,
            )
            s.add(row)
            post_entry(
                s,
                f"invoice:{row.id}",
                f"Invoice {row.number}",
                row.currency,
                [
                    (AR, row.total, ZERO),
                    (REVENUE, ZERO, row.subtotal - row.discount),
                    (TAX, ZERO, row.tax),
                ],
            )
            s.flush()
            if row.order_id is not None:
                settle_commitment(s, row.order_id)
            return _invoice(row)

    def get_invoice(self, invoice_id: str) -> Invoice:
        with unit_of_work(self._engine, read=True) as s:
            return _invoice(require(s, InvoiceRow, invoice_id, "invoice"))

    def charge_view(self, invoice_id: str, customer_id: str) -> ChargeView:
        """The invoice, its payments and the customer's default card token, as of one
        moment (what a charge decides on)."""
        with unit_of_work(self._engine, read=True) as s:
            inv = require(s, InvoiceRow, invoice_id, "invoice")
            if inv.customer_id != customer_id:  # a card pays its own customer's invoices only
                raise NotFound("invoice", f"{invoice_id} of customer {customer_id}")
            method = default_method(s, customer_id)
            return ChargeView(
                invoice=_invoice(inv),
                payments=_payments_where(s, PaymentRow.invoice_id == invoice_id),
                card_token=method.token if method is not None else None,
            )

    def list_invoices(
        self, customer_id: str | None, status: InvoiceStatus | None, limit: int, cursor: str | None
    ) -> Page[Invoice]:
        filters: list[Any] = []
        if customer_id is not None:
            filters.append(InvoiceRow.customer_id == customer_id)
        if status is not None:
            filters.append(InvoiceRow.status == status)
        with unit_of_work(self._engine, read=True) as s:
            rows, nxt = page_query(s, InvoiceRow, filters, limit, cursor)
            return Page[Invoice](data=[_invoice(r) for r in rows], next_cursor=nxt)

    def void_invoice(self, key: str, invoice_id: str) -> Invoice:
        """Void an invoice nothing was paid or credited on; its entry is reversed."""
        with unit_of_work(self._engine) as s:
            row = require(s, InvoiceRow, invoice_id, "invoice", lock=True)
            if row.status == "void":
                return _invoice(row)
            # Open, or paid only because nothing was due (a free invoice).
            if row.status not in ("open", "paid") or row.amount_paid or row.amount_credited:
                raise Conflict(f"invoice {row.number} is {row.status} with payments or credits")
            row.status = "void"
            s.add(row)
            post_entry(
                s,
                f"void:{row.id}",
                f"Void {row.number}",
                row.currency,
                [
                    (AR, ZERO, row.total),
                    (REVENUE, row.subtotal - row.discount, ZERO),
                    (TAX, row.tax, ZERO),
                ],
            )
            return _invoice(row)

    # --- payments, credit notes, refunds ----------------------------------------------------

    def record_payment(
        self,
        key: str,
        invoice_id: str,
        amount: Decimal,
        method: PaymentMethodKind,
        reference: str,
        charge_id: str | None = None,
    ) -> Payment:
        """Apply a payment to an open invoice, once per key, never above the amount due."""
        with unit_of_work(self._engine) as s:
            # The key is checked once the invoice is locked: a concurrent call with the
            # same key has committed by then, and its payment is the answer.
            inv = require(s, InvoiceRow, invoice_id, "invoice", lock=True)
            found = s.exec(select(PaymentRow).where(PaymentRow.key == key)).first()
            if found is not None:
                return _payment(found)
            amount = exact(amount, inv.currency, "amount")
            due = inv.total - inv.amount_paid - inv.amount_credited
            if inv.status != "open":
                raise InvoiceNotPayable(f"invoice {inv.number} is {inv.status}")
            if amount <= 0 or amount > due:
                raise InvoiceNotPayable(f"amount {amount} must be above 0 and at most {due}")
            row = PaymentRow(
                id=new_id("pay"),
                key=key,
                invoice_id=inv.id,
                customer_id=inv.customer_id,
                amount=amount,
                currency=inv.currency,
                method=method,
                reference=reference,
                charge_id=charge_id,
            )
            inv.amount_paid += amount
            if inv.amount_paid + inv.amount_credited >= inv.total:
                inv.status = "paid"
            s.add_all([row, inv])
            post_entry(
                s,
                f"payment:{row.id}",
                f"Payment for {inv.number}",
                inv.currency,
                [
                    (CASH, amount, ZERO),
                    (AR, ZERO, amount),
                ],
            )
            s.flush()
            return _payment(row)

    def payments_for_invoice(self, invoice_id: str) -> list[Payment]:
        return self._payments(PaymentRow.invoice_id == invoice_id)

    def payments_for_customer(self, customer_id: str) -> list[Payment]:
        return self._payments(PaymentRow.customer_id == customer_id)

    def _payments(self, where: Any) -> list[Payment]:
        with unit_of_work(self._engine, read=True) as s:
            return _payments_where(s, where)

    def issue_credit_note(
        self, key: str, invoice_id: str, amount: Decimal, reason: str
    ) -> CreditNote:
        """Credit part of an invoice (at most what is not yet credited), tax included."""
        with unit_of_work(self._engine) as s:
            inv = require(s, InvoiceRow, invoice_id, "invoice", lock=True)  # then the key
            found = s.exec(select(CreditNoteRow).where(CreditNoteRow.key == key)).first()
            if found is not None:
                return CreditNote.model_validate(found, from_attributes=True)
            amount = exact(amount, inv.currency, "amount")
            if inv.status == "void" or amount <= 0 or amount > inv.total - inv.amount_credited:
                raise Conflict(f"cannot credit {amount} on {inv.number}")
            row = CreditNoteRow(
                id=new_id("cn"),
                key=key,
                invoice_id=inv.id,
                customer_id=inv.customer_id,
                amount=amount,
                currency=inv.currency,
                reason=reason,
            )
            # The note's tax is its share of the invoice's tax, taken as the difference of the
            # shares credited after and before it: the notes of a fully credited invoice
            # reverse exactly its tax, however it was split.
            before = inv.amount_credited
            inv.amount_credited += amount
            if inv.status == "open" and inv.amount_paid + inv.amount_credited >= inv.total:
                inv.status = "paid"
            tax = _tax_share(inv, inv.amount_credited) - _tax_share(inv, before)
            s.add_all([row, inv])
            post_entry(
                s,
                f"credit:{row.id}",
                f"Credit note on {inv.number}",
                inv.currency,
                [
                    (RETURNS, amount - tax, ZERO),
                    (TAX, tax, ZERO),
                    (AR, ZERO, amount),
                ],
            )
            s.flush()
            return CreditNote.model_validate(row, from_attributes=True)

    def record_refund(self, key: str, payment_id: str, amount: Decimal, refund_id: str) -> Payment:
        with unit_of_work(self._engine) as s:
            pay = require(s, PaymentRow, payment_id, "payment", lock=True)
            if s.get(RefundRow, key) is not None:
                return _payment(pay)
            amount = exact(amount, pay.currency, "amount")
            if amount <= 0 or amount > pay.amount - pay.refunded:
                raise Conflict(f"cannot refund {amount} of payment {pay.id}")
            pay.refunded += amount
            s.add_all(
                [pay, RefundRow(key=key, payment_id=pay.id, amount=amount, refund_id=refund_id)]
            )
            post_entry(
                s,
                f"refund:{key}",
                f"Refund of {pay.id}",
                pay.currency,
                [
                    (AR, amount, ZERO),
                    (CASH, ZERO, amount),
                ],
            )
            s.flush()
            return _payment(pay)

    def refunds_recorded(self, keys: list[str]) -> Decimal:
        """The sum of the refunds recorded under ``keys`` (0 for keys never used)."""
        if not keys:
            return ZERO
        with unit_of_work(self._engine, read=True) as s:
            rows = s.exec(select(RefundRow).where(col(RefundRow.key).in_(keys))).all()
            return sum((r.amount for r in rows), ZERO)

    # --- ledger -----------------------------------------------------------------------------

    def ledger_entries(self, limit: int = 100) -> list[LedgerEntry]:
        with unit_of_work(self._engine, read=True) as s:
            entries = s.exec(
                select(LedgerEntryRow).order_by(col(LedgerEntryRow.created_at).desc()).limit(limit)
            ).all()
            out = []
            for e in entries:
                postings = s.exec(
                    select(LedgerPostingRow).where(LedgerPostingRow.entry_id == e.id)
                ).all()
                out.append(
                    LedgerEntry(
                        id=e.id,
                        key=e.key,
                        memo=e.memo,
                        currency=e.currency,
                        created_at=e.created_at,
                        postings=[
                            LedgerPosting(account=p.account, debit=p.debit, credit=p.credit)
                            for p in postings
                        ],
                    )
                )
            return out

    def trial_balance(self, currency: str) -> dict[str, Decimal]:
        """Debits minus credits per account; the balances always sum to zero."""
        with unit_of_work(self._engine, read=True) as s:
            rows = s.exec(
                select(LedgerPostingRow).where(LedgerPostingRow.currency == currency)
            ).all()
            out: dict[str, Decimal] = {}
            for p in rows:
                out[p.account] = out.get(p.account, ZERO) + p.debit - p.credit
            return out


def _tax_share(inv: InvoiceRow, credited: Decimal) -> Decimal:
    """The part of the invoice's tax in ``credited`` of its total (rounded once)."""
    if not inv.total:
        return ZERO
    return quantize(EXACT.divide(times(credited, inv.tax), inv.total), inv.currency)
