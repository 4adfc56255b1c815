"""QuoteToOrder contracts: API requests, the quote and order views, workflow input."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from domain.money import Amount, Fraction
from domain.pricing import PricedLine, Totals
from workflows.contracts.activities import CustomerSnapshot
from workflows.contracts.common import ClockRef, FailedStep, Step

QuoteStatus = Literal[
    "pending_approval", "open", "accepted", "ordered", "rejected", "declined", "expired"
]
OrderStatus = Literal[
    "received",
    "credit_hold",
    "backordered",
    "confirmed",
    "fulfilling",
    "completed",
    "needs_attention",
    "cancelled",
]
PaymentTerms = Literal["card_on_file", "invoice"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class LineRequest(_In):
    sku: str | None = Field(default=None, min_length=1, max_length=64)
    plan_code: str | None = Field(default=None, min_length=1, max_length=64)
    quantity: int = Field(gt=0, le=1_000_000)

    @model_validator(mode="after")
    def _one_key(self) -> LineRequest:
        if (self.sku is None) == (self.plan_code is None):
            raise ValueError("give exactly one of sku or plan_code")
        return self


class QuoteCreate(_In):
    customer_id: str
    lines: list[LineRequest] = Field(min_length=1, max_length=200)
    discount_pct: Fraction = Decimal("0")
    valid_days: int = Field(default=30, ge=1, le=365)
    partner_id: str | None = None
    channel: Literal["api", "portal", "partner", "shop", "crm"] = "api"


class OrderCreate(_In):
    customer_id: str
    lines: list[LineRequest] = Field(min_length=1, max_length=200)
    payment: PaymentTerms
    partner_id: str | None = None


class NoteRequest(_In):
    note: str = Field(default="", max_length=2000)


class AcceptRequest(_In):
    payment: PaymentTerms


class DeclineRequest(_In):
    reason: str | None = Field(default=None, max_length=2000)


class CancelRequest(_In):
    reason: str = Field(min_length=1, max_length=2000)


class ShipmentEvent(_In):
    event: Literal["shipped", "delivered"]
    tracking_number: str | None = Field(default=None, max_length=100)


class Quote(BaseModel):
    id: str
    process_id: str
    customer_id: str
    status: QuoteStatus
    lines: list[PricedLine]
    subtotal: Amount
    discount_pct: Amount
    discount: Amount
    tax_rate: Amount
    tax: Amount
    total: Amount
    currency: str
    requires_approval: bool
    expires_at: datetime
    order_id: str | None = None
    partner_id: str | None = None
    channel: str = "api"
    note: str | None = None
    created_at: datetime


class ShipmentLine(BaseModel):
    sku: str
    quantity: int


class Shipment(BaseModel):
    id: str
    status: Literal["pending", "shipped", "delivered", "cancelled"]
    lines: list[ShipmentLine]
    tracking_number: str | None = None
    invoice_id: str | None = None


class ServiceOrder(BaseModel):
    id: str
    sku: str
    quantity: int
    status: Literal["open", "cancelled"] = "open"


class PendingSubscription(BaseModel):
    """A plan line of the order, recorded for the subscription process to start."""

    id: str
    plan_code: str
    quantity: int


class Order(BaseModel):
    id: str
    process_id: str
    customer_id: str
    quote_id: str | None = None
    status: OrderStatus
    lines: list[PricedLine]
    subtotal: Amount
    discount: Amount
    tax: Amount
    total: Amount
    currency: str
    payment: PaymentTerms
    partner_id: str | None = None
    steps: list[Step]
    shipments: list[Shipment]
    subscription_ids: list[str]
    subscriptions: list[PendingSubscription] = Field(default_factory=list)
    service_orders: list[ServiceOrder]
    invoice_ids: list[str]
    failed_step: FailedStep | None = None
    hold_reason: str | None = None
    cancel_reason: str | None = None
    erp_number: str | None = None
    created_at: datetime
    completed_at: datetime | None = None


class QuoteToOrderInput(BaseModel):
    """Start a quote (``quote_id`` set) or an order directly (``quote_id`` None).

    Lines arrive priced: the API prices a request before it starts the process (so bad
    input is refused before anything runs), and the price is fixed at that moment.
    """

    process_id: str
    customer_id: str
    quote_id: str | None
    order_id: str
    lines: list[PricedLine]
    totals: Totals
    currency: str
    tax_rate: Amount
    discount_pct: Amount = Decimal("0")
    requires_approval: bool = False
    valid_days: int = 30
    created_at: datetime
    partner_id: str | None = None
    channel: str = "api"
    payment: PaymentTerms | None = None
    clock: ClockRef | None = None
    # The starter wrote the first version of the read model (the API does, so a process is
    # readable the moment it is answered for, even before a worker picks it up); the process
    # then writes only the versions after it. False in histories from before this field.
    first_document_saved: bool = False
    # The order stage checks credit against open AR and open orders and commits its total
    # in one ERP step (starters set it; False in histories from before commitments, whose
    # processes check as they did).
    commit_credit: bool = False
    # Each step's first attempt runs alone, so a failure shows in the view before the
    # retries (starters set it; False in histories from before: one schedule per step).
    first_attempt_alone: bool = False
    # Set only in histories of orders placed directly before credit was committed by the
    # process: the credit position the starter read at placement, which the check decided
    # on. Starters now leave it None; the process checks and commits in one ERP step.
    credit: CustomerSnapshot | None = None


class QuoteToOrderResult(BaseModel):
    quote: Quote | None
    order: Order | None


def quote_process_id(quote_id: str) -> str:
    """The workflow id of the process that a quote starts (its order keeps it)."""
    return f"q2o-{quote_id}"


def order_process_id(order_id: str) -> str:
    """The workflow id of an order placed without a quote."""
    return f"q2o-{order_id}"


def initial_quote(inp: QuoteToOrderInput) -> Quote:
    """The quote as it stands when its process starts (the API answers with this)."""
    assert inp.quote_id is not None
    return Quote(
        id=inp.quote_id,
        process_id=inp.process_id,
        customer_id=inp.customer_id,
        status="pending_approval" if inp.requires_approval else "open",
        lines=inp.lines,
        subtotal=inp.totals.subtotal,
        discount_pct=inp.discount_pct,
        discount=inp.totals.discount,
        tax_rate=inp.tax_rate,
        tax=inp.totals.tax,
        total=inp.totals.total,
        currency=inp.currency,
        requires_approval=inp.requires_approval,
        expires_at=inp.created_at + timedelta(days=inp.valid_days),
        partner_id=inp.partner_id,
        channel=inp.channel,
        created_at=inp.created_at,
    )


def initial_order(inp: QuoteToOrderInput, payment: PaymentTerms, at: datetime) -> Order:
    """The order as it stands when it is placed (``received``)."""
    return Order(
        id=inp.order_id,
        process_id=inp.process_id,
        customer_id=inp.customer_id,
        quote_id=inp.quote_id,
        status="received",
        lines=inp.lines,
        subtotal=inp.totals.subtotal,
        discount=inp.totals.discount,
        tax=inp.totals.tax,
        total=inp.totals.total,
        currency=inp.currency,
        payment=payment,
        partner_id=inp.partner_id,
        steps=[],
        shipments=[],
        subscription_ids=[],
        service_orders=[],
        invoice_ids=[],
        created_at=at,
    )


class ShipmentEventUpdate(BaseModel):
    """The carrier's callback for one shipment of the order."""

    shipment_id: str
    event: Literal["shipped", "delivered"]
    tracking_number: str | None = None
