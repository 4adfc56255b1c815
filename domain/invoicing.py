"""Invoice assembly: turn priced lines into a draft invoice with its totals and due date.

Pure: the issue date is passed in (the process clock's date), never read here. Totals
follow API.md "Arithmetic" and always equal the sum of the rounded lines.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, model_validator

from domain.errors import InvalidInput
from domain.money import Amount, quantize
from domain.pricing import PricedLine, totals

InvoiceLineKind = Literal[
    "subscription", "usage", "one_time", "third_party", "proration", "late_fee", "credit"
]


class InvoiceLine(BaseModel):
    kind: InvoiceLineKind
    description: str
    quantity: Amount
    unit_price: Amount
    amount: Amount
    sku: str | None = None
    period_start: date | None = None
    period_end: date | None = None
    vendor: str | None = None


class DraftInvoice(BaseModel):
    """An invoice computed here and not yet issued; its totals are checked on build."""

    customer_id: str
    currency: str
    issue_date: date
    due_date: date
    lines: list[InvoiceLine]
    subtotal: Amount
    discount: Amount = Decimal("0")
    tax: Amount
    total: Amount
    order_id: str | None = None
    process_id: str | None = None

    @model_validator(mode="after")
    def _totals_add_up(self) -> DraftInvoice:
        if self.subtotal != sum((x.amount for x in self.lines), Decimal(0)):
            raise ValueError("invoice subtotal is not the sum of its lines")
        if self.total != self.subtotal - self.discount + self.tax:
            raise ValueError("invoice total is not subtotal - discount + tax")
        return self


def _invoice_line(line: PricedLine) -> InvoiceLine:
    return InvoiceLine(
        kind="third_party" if line.kind == "third_party" else "one_time",
        description=line.description,
        quantity=Decimal(line.quantity),
        unit_price=line.unit_price,
        amount=line.amount,
        sku=line.sku,
        vendor=line.vendor,
    )


def due_date(issue_date: date, terms_days: int, pay_by_card: bool) -> date:
    """Card-on-file invoices are due on issue; others after the payment terms."""
    return issue_date if pay_by_card else issue_date + timedelta(days=terms_days)


def assemble_order_invoice(
    *,
    customer_id: str,
    currency: str,
    lines: list[PricedLine],
    discount_pct: Decimal,
    tax_rate: Decimal,
    issue_date: date,
    terms_days: int,
    pay_by_card: bool,
    order_id: str,
    process_id: str,
) -> DraftInvoice:
    """A draft invoice for some lines of an order, with the order's discount and tax rate."""
    if not lines:
        raise InvalidInput("an invoice needs at least one line")
    inv_lines = [_invoice_line(x) for x in lines]
    t = totals([x.amount for x in inv_lines], discount_pct, tax_rate, currency)
    return DraftInvoice(
        customer_id=customer_id,
        currency=currency,
        issue_date=issue_date,
        due_date=due_date(issue_date, terms_days, pay_by_card),
        lines=inv_lines,
        subtotal=quantize(t.subtotal, currency),
        discount=t.discount,
        tax=t.tax,
        total=t.total,
        order_id=order_id,
        process_id=process_id,
    )
