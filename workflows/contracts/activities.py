"""Payloads of the activities: one input and one result model per step.

Every result derives from ``StepResult`` so the timeline can show how many attempts the
step took (the activity fills ``attempt`` from its own info).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from domain.invoicing import DraftInvoice
from domain.money import Amount


class StepResult(BaseModel):
    attempt: int = 1
    # The fields an operator's skip may set (None: any). A step whose result names a record
    # the process then acts on (charges, reverses) takes none: the process cannot check a
    # record an operator names, and a retry finds what the step made by its key.
    skip_fields: ClassVar[frozenset[str] | None] = None


class Done(StepResult):
    """A step with nothing to return."""


class CustomerRef(BaseModel):
    customer_id: str
    as_of: date


class CustomerSnapshot(StepResult):
    customer_id: str
    name: str = ""
    email: str = ""
    currency: str = "EUR"
    credit_limit: Amount = Decimal("0")
    open_ar: Amount = Decimal("0")
    payment_terms_days: int = 30
    tax_rate: Amount = Decimal("0")
    has_payment_method: bool = False


class CreditInput(BaseModel):
    """Check an order's total against its customer's credit and commit it if it fits
    (``force``: an operator released the hold, so it is committed whatever the position)."""

    key: str
    customer_id: str
    order_id: str
    amount: Amount
    currency: str
    as_of: date
    force: bool = False


class CreditCheck(CustomerSnapshot):
    """The credit position an order was checked against (its own commitment left out) and
    the outcome: ``committed`` when the order's total now counts against the limit, else
    held for ``reason``."""

    # Skipped: an operator cleared the credit by hand; nothing was committed.
    skip_fields: ClassVar[frozenset[str] | None] = frozenset({"payment_terms_days"})
    customer_id: str = ""
    open_orders: Amount = Decimal("0")
    committed: bool = True
    reason: str | None = None


class ReserveInput(BaseModel):
    key: str
    order_id: str
    lines: dict[str, int]


class CommitStockInput(BaseModel):
    """The goods of ``lines`` left: commit the reservation under ``key``, or with none (its
    step was skipped), deduct the lines themselves."""

    key: str
    order_id: str = ""
    lines: dict[str, int] = Field(default_factory=dict)


class BackorderInput(BaseModel):
    process_id: str
    skus: list[str]


class KeyInput(BaseModel):
    key: str


class Released(StepResult):
    """Stock given back: the processes that waited for its SKUs, to be told."""

    # Skipped: stock was put back by hand; nobody is told (they re-check on their timer).
    skip_fields: ClassVar[frozenset[str] | None] = frozenset()
    woken: list[str] = Field(default_factory=list)


class SalesOrderInput(BaseModel):
    key: str
    order_id: str
    customer_id: str
    total: Amount
    currency: str


class SalesOrderResult(StepResult):
    sales_order_id: str = ""
    erp_number: str = ""


class IssueInvoiceInput(BaseModel):
    key: str
    draft: DraftInvoice


class InvoiceResult(StepResult):
    skip_fields: ClassVar[frozenset[str] | None] = frozenset()  # skipped: nothing issued

    invoice_id: str = ""
    number: str = ""
    total: Amount = Decimal("0")
    amount_due: Amount = Decimal("0")
    status: str = "open"


class ReverseInvoiceInput(BaseModel):
    key: str
    invoice_id: str
    reason: str


class ChargeInput(BaseModel):
    key: str
    invoice_id: str
    customer_id: str


class ChargeResult(StepResult):
    """The payment this step's card charge made (empty, 0, when the invoice was paid by
    other means before the charge could be applied: the charge went back)."""

    skip_fields: ClassVar[frozenset[str] | None] = frozenset()  # skipped: nothing charged

    charge_id: str = ""
    payment_id: str = ""
    amount: Amount = Decimal("0")


class RefundInput(BaseModel):
    key: str
    invoice_id: str
    # The key the invoice was charged with: a charge no payment holds is refunded too.
    charge_key: str | None = None


class RefundByHandInput(BaseModel):
    """What an operator refunded by hand of an invoice's payments made by other means than
    the card (a bank transfer sent back), to be recorded against them."""

    key: str
    invoice_id: str
    amount: Amount = Field(gt=0)


class RefundResult(StepResult):
    skip_fields: ClassVar[frozenset[str] | None] = frozenset({"refunded"})  # what went back

    refunded: Amount = Field(default=Decimal("0"), ge=0)
    refund_ids: list[str] = []


class EmailInput(BaseModel):
    key: str
    customer_id: str
    subject: str
    body: str


class EmailResult(StepResult):
    message_id: str = ""


class DocumentInput(BaseModel):
    kind: str
    doc_id: str
    customer_id: str
    body: dict[str, Any]
