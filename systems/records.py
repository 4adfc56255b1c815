"""Business records as they cross the ports and the HTTP API (pydantic, no tables).

``…Create`` models are what a client sends; the bare names are what the systems return and
the API answers with. Amounts are ``Amount`` (Decimal in, decimal string out).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Generic, Literal, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    field_validator,
    model_validator,
)

from domain.credit import CreditDecision
from domain.invoicing import DraftInvoice as DraftInvoice
from domain.invoicing import InvoiceLine as InvoiceLine
from domain.money import Amount, Fraction, NonNegativeAmount, TaxRate, check_currency
from domain.pricing import CatalogLine as CatalogLine

T = TypeVar("T")

Role = Literal["viewer", "client", "operator", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "client", "operator", "admin")
ProductKind = Literal["physical", "service", "third_party"]
FaultMode = Literal["ok", "down", "slow"]
SystemName = Literal["erp", "payments", "notifications"]
# Bounds on client numbers that would otherwise overflow a column (stock is a 32-bit
# INTEGER on PostgreSQL) or date arithmetic. No SKU holds more than MAX_STOCK units.
MAX_STOCK = 1_000_000_000
CLOCK_YEARS = (1970, 9000)


class Strict(BaseModel):
    """Client input: unknown fields are refused so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _currency(value: str) -> str:
    try:
        return check_currency(value)
    except Exception as exc:
        raise ValueError(str(exc)) from exc


# --- customers --------------------------------------------------------------------------


class CustomerCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    email: EmailStr
    currency: str
    credit_limit: NonNegativeAmount
    payment_terms_days: int = Field(default=30, ge=0, le=365)
    billing_day: int = Field(default=1, ge=1, le=28)
    tax_rate: TaxRate = Decimal("0")
    partner_id: str | None = None
    test_clock_id: str | None = None

    _cur = field_validator("currency")(_currency)


class Account(BaseModel):
    open_ar: Amount
    overdue: Amount
    credit_available: Amount = Field(
        description="credit limit − open AR − open orders, never below zero"
    )
    open_orders: Amount = Field(
        default=Decimal("0"),
        description="the value of accepted orders not yet invoiced; it counts against the "
        "credit limit as open AR does",
    )


class Customer(BaseModel):
    id: str
    name: str
    email: str
    currency: str
    credit_limit: Amount
    payment_terms_days: int
    billing_day: int
    tax_rate: Amount
    partner_id: str | None = None
    test_clock_id: str | None = None
    created_at: datetime
    account: Account | None = None


class CreditView(BaseModel):
    """What a credit decision reads, from one transaction: the customer, its AR and
    whether a card is on file."""

    customer: Customer
    account: Account
    has_payment_method: bool


class CreditCommitment(BaseModel):
    """The answer of a credit check that commits: the position it decided on (``account``
    without this order) and whether this order's value now counts against the limit."""

    view: CreditView
    decision: CreditDecision
    committed: bool


class PaymentMethodCreate(Strict):
    card_number: str = Field(min_length=12, max_length=19, pattern=r"^[0-9 ]+$")
    exp_month: int = Field(ge=1, le=12)
    exp_year: int = Field(ge=2000, le=2100)
    cvc: str = Field(min_length=3, max_length=4, pattern=r"^[0-9]+$")


class PaymentMethod(BaseModel):
    id: str
    customer_id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    is_default: bool = True
    created_at: datetime


class PriceItem(Strict):
    sku: str | None = None
    plan_code: str | None = None
    unit_price: NonNegativeAmount

    @model_validator(mode="after")
    def _one_key(self) -> PriceItem:
        if (self.sku is None) == (self.plan_code is None):
            raise ValueError("give exactly one of sku or plan_code")
        return self


class PriceBook(Strict):
    items: list[PriceItem] = Field(max_length=1000)


# --- catalog -----------------------------------------------------------------------------


class ProductCreate(Strict):
    sku: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    name: str = Field(min_length=1, max_length=200)
    kind: ProductKind
    unit_price: NonNegativeAmount
    currency: str
    stock: int | None = Field(default=None, ge=0, le=MAX_STOCK)
    vendor: str | None = None

    _cur = field_validator("currency")(_currency)

    @model_validator(mode="after")
    def _kind_fields(self) -> ProductCreate:
        if self.kind != "physical" and self.stock is not None:
            raise ValueError("stock applies to physical products only")
        if self.kind == "third_party" and not self.vendor:
            raise ValueError("third_party products need a vendor")
        return self


class Product(BaseModel):
    sku: str
    id: str
    name: str
    kind: ProductKind
    unit_price: Amount
    currency: str
    vendor: str | None = None
    created_at: datetime


class Tier(Strict):
    up_to: int | None = Field(default=None, gt=0)
    unit_price: NonNegativeAmount
    flat_fee: NonNegativeAmount = Decimal("0")


class UsageCharge(Strict):
    metric: str = Field(min_length=1, max_length=64)
    model: Literal["per_unit", "graduated", "volume", "package"]
    unit_price: NonNegativeAmount | None = None
    package_size: int | None = Field(default=None, gt=0)
    tiers: list[Tier] | None = None

    @model_validator(mode="after")
    def _model_fields(self) -> UsageCharge:
        if self.model in ("per_unit", "package") and self.unit_price is None:
            raise ValueError(f"{self.model} needs unit_price")
        if self.model == "package" and self.package_size is None:
            raise ValueError("package needs package_size")
        if self.model in ("graduated", "volume"):
            if not self.tiers:
                raise ValueError(f"{self.model} needs tiers")
            bounds = [t.up_to for t in self.tiers]
            if bounds[-1] is not None or any(b is None for b in bounds[:-1]):
                raise ValueError("only the last tier may (and must) have up_to null")
            finite = [b for b in bounds if b is not None]
            if finite != sorted(set(finite)):
                raise ValueError("tiers must ascend by up_to")
        return self


class PlanCreate(Strict):
    code: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    name: str = Field(min_length=1, max_length=200)
    currency: str
    interval: Literal["month", "year"]
    price: NonNegativeAmount
    trial_days: int = Field(default=0, ge=0, le=730)
    usage: list[UsageCharge] = Field(default_factory=list)

    _cur = field_validator("currency")(_currency)


class Plan(BaseModel):
    id: str
    code: str
    name: str
    currency: str
    interval: Literal["month", "year"]
    price: Amount
    trial_days: int
    usage: list[UsageCharge]
    created_at: datetime


class Agreement(Strict):
    kind: Literal["revenue_share", "commission"]
    rate: Fraction
    basis: Literal["collected", "billed"]


class PartnerCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    email: EmailStr
    agreement: Agreement


class Partner(BaseModel):
    id: str
    name: str
    email: str
    agreement: Agreement
    created_at: datetime


class Inventory(BaseModel):
    sku: str
    on_hand: int
    reserved: int
    available: int


class InventoryAdjustment(Strict):
    delta: int = Field(ge=-MAX_STOCK, le=MAX_STOCK)
    reason: str = Field(min_length=1, max_length=500)


# --- invoices, payments, ledger ------------------------------------------------------------

InvoiceStatus = Literal["open", "paid", "void", "uncollectible"]


class Invoice(BaseModel):
    id: str
    number: str
    customer_id: str
    status: InvoiceStatus
    currency: str
    issue_date: date
    due_date: date
    lines: list[InvoiceLine]
    subtotal: Amount
    discount: Amount
    tax: Amount
    total: Amount
    amount_paid: Amount
    amount_credited: Amount
    amount_due: Amount
    order_id: str | None = None
    process_id: str | None = None
    created_at: datetime


PaymentMethodKind = Literal["card", "bank_transfer", "cash"]


class Payment(BaseModel):
    id: str
    invoice_id: str
    customer_id: str
    amount: Amount
    currency: str
    method: PaymentMethodKind
    reference: str
    charge_id: str | None = None
    refunded: Amount
    created_at: datetime


# The status of an idempotency record whose request is still under way.
IDEMPOTENCY_PENDING = 0


class GatewayCharge(BaseModel):
    """A successful charge as the gateway holds it."""

    charge_id: str
    amount: Amount
    refunded: Amount


class ChargeView(BaseModel):
    """What a card charge reads, from one transaction: the invoice, the payments already
    applied to it, and the token of the customer's default card (None without one)."""

    invoice: Invoice
    payments: list[Payment]
    card_token: str | None


class CreditNote(BaseModel):
    id: str
    invoice_id: str
    customer_id: str
    amount: Amount
    currency: str
    reason: str
    created_at: datetime


class LedgerPosting(BaseModel):
    account: str
    debit: Amount
    credit: Amount


class LedgerEntry(BaseModel):
    id: str
    key: str
    memo: str
    currency: str
    postings: list[LedgerPosting]
    created_at: datetime


# --- orders in the ERP ---------------------------------------------------------------------


class SalesOrder(BaseModel):
    """The ERP's sales order document (distinct from the process's order view)."""

    id: str
    erp_number: str
    order_id: str
    customer_id: str
    status: Literal["open", "cancelled", "closed"]
    total: Amount
    currency: str


# --- test clocks, faults, keys -------------------------------------------------------------


class TestClockCreate(Strict):
    frozen_time: AwareDatetime = Field(
        description="RFC 3339 with its offset, kept in UTC; "
        f"years {CLOCK_YEARS[0]}–{CLOCK_YEARS[1]}"
    )

    @field_validator("frozen_time", mode="before")
    @classmethod
    def _rfc3339(cls, value: object) -> object:
        if not isinstance(value, str | datetime):  # not a number of seconds
            raise ValueError("must be an RFC 3339 time with its offset")
        return value

    @field_validator("frozen_time")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        try:
            utc = value.astimezone(UTC)
        except OverflowError:
            raise ValueError("out of range") from None
        if not CLOCK_YEARS[0] <= utc.year <= CLOCK_YEARS[1]:
            raise ValueError(f"must fall in the years {CLOCK_YEARS[0]}–{CLOCK_YEARS[1]}")
        return utc


class TestClock(BaseModel):
    __test__ = False  # not a pytest class

    id: str
    frozen_time: datetime
    status: Literal["ready", "advancing"]
    created_at: datetime


class FaultSet(Strict):
    system: SystemName
    mode: FaultMode


class Fault(BaseModel):
    system: SystemName
    mode: FaultMode


class ApiKey(BaseModel):
    id: str
    name: str
    role: Role
    prefix: str
    created_at: datetime


class Page(BaseModel, Generic[T]):
    """A cursor page: ``next_cursor`` is null on the last page."""

    data: list[T]
    next_cursor: str | None = None
