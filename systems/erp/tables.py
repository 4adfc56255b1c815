"""Tables of the embedded ERP (SQLModel). Money columns are exact text + a currency.

Only ``systems/erp`` reads or writes these; everything else sees ``systems.records``.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from systems.db import DecimalText, UtcDateTime, utcnow


def money(default: str | None = "0") -> Any:
    return Field(
        default=Decimal(default) if default is not None else None, sa_column=Column(DecimalText())
    )


def stamp() -> Any:
    return Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))


def json_col() -> Any:
    return Field(default=None, sa_column=Column(JSON))


class CustomerRow(SQLModel, table=True):
    __tablename__ = "erp_customers"
    id: str = Field(primary_key=True)
    name: str
    email: str
    currency: str
    credit_limit: Decimal = money()
    payment_terms_days: int = 30
    billing_day: int = 1
    tax_rate: Decimal = money()
    partner_id: str | None = None
    test_clock_id: str | None = Field(default=None, index=True)
    created_at: datetime = stamp()


class PaymentMethodRow(SQLModel, table=True):
    __tablename__ = "erp_payment_methods"
    id: str = Field(primary_key=True)
    customer_id: str = Field(index=True)
    token: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    created_at: datetime = stamp()


class PriceRow(SQLModel, table=True):
    __tablename__ = "erp_prices"
    __table_args__ = (UniqueConstraint("customer_id", "item"),)
    id: int | None = Field(default=None, primary_key=True)
    customer_id: str = Field(index=True)
    item: str  # "sku:<sku>" or "plan:<code>"
    unit_price: Decimal = money()


class ProductRow(SQLModel, table=True):
    __tablename__ = "erp_products"
    sku: str = Field(primary_key=True)
    id: str = Field(unique=True)
    name: str
    kind: str
    unit_price: Decimal = money()
    currency: str
    vendor: str | None = None
    created_at: datetime = stamp()


class StockRow(SQLModel, table=True):
    __tablename__ = "erp_stock"
    sku: str = Field(primary_key=True)
    on_hand: int = 0
    reserved: int = 0


class ReservationRow(SQLModel, table=True):
    __tablename__ = "erp_reservations"
    key: str = Field(primary_key=True)
    order_id: str
    status: str = "active"  # active | released | committed
    lines: dict[str, int] = json_col()
    created_at: datetime = stamp()


class CreditCommitmentRow(SQLModel, table=True):
    """An accepted order's value, counted against its customer's credit limit until the
    order is invoiced (its invoices consume it), cancelled or completed (released)."""

    __tablename__ = "erp_credit_commitments"
    key: str = Field(primary_key=True)
    customer_id: str = Field(index=True)
    order_id: str = Field(index=True)
    amount: Decimal = money()
    currency: str
    status: str = Field(default="active", index=True)  # active | invoiced | released
    created_at: datetime = stamp()


class BackorderRow(SQLModel, table=True):
    __tablename__ = "erp_backorders"
    __table_args__ = (UniqueConstraint("process_id", "sku"),)
    id: int | None = Field(default=None, primary_key=True)
    process_id: str
    sku: str = Field(index=True)


class PlanRow(SQLModel, table=True):
    __tablename__ = "erp_plans"
    code: str = Field(primary_key=True)
    id: str = Field(unique=True)
    name: str
    currency: str
    interval: str
    price: Decimal = money()
    trial_days: int = 0
    usage: list[dict[str, Any]] = json_col()
    created_at: datetime = stamp()


class PartnerRow(SQLModel, table=True):
    __tablename__ = "erp_partners"
    id: str = Field(primary_key=True)
    name: str
    email: str
    agreement: dict[str, Any] = json_col()
    created_at: datetime = stamp()


class CounterRow(SQLModel, table=True):
    """Gapless sequences (invoice numbers per year, sales order numbers)."""

    __tablename__ = "erp_counters"
    name: str = Field(primary_key=True)
    value: int = 0


class SalesOrderRow(SQLModel, table=True):
    __tablename__ = "erp_sales_orders"
    id: str = Field(primary_key=True)
    key: str = Field(unique=True)
    erp_number: str = Field(unique=True)
    order_id: str = Field(index=True)
    customer_id: str
    status: str = "open"
    total: Decimal = money()
    currency: str


class InvoiceRow(SQLModel, table=True):
    __tablename__ = "erp_invoices"
    id: str = Field(primary_key=True)
    key: str = Field(unique=True)
    number: str = Field(unique=True)
    customer_id: str = Field(index=True)
    status: str = Field(default="open", index=True)
    currency: str
    issue_date: date
    due_date: date
    lines: list[dict[str, Any]] = json_col()
    subtotal: Decimal = money()
    discount: Decimal = money()
    tax: Decimal = money()
    total: Decimal = money()
    amount_paid: Decimal = money()
    amount_credited: Decimal = money()
    order_id: str | None = Field(default=None, index=True)
    process_id: str | None = None
    created_at: datetime = stamp()


class PaymentRow(SQLModel, table=True):
    __tablename__ = "erp_payments"
    id: str = Field(primary_key=True)
    key: str = Field(unique=True)
    invoice_id: str = Field(index=True)
    customer_id: str = Field(index=True)
    amount: Decimal = money()
    currency: str
    method: str
    reference: str
    charge_id: str | None = None
    refunded: Decimal = money()
    created_at: datetime = stamp()


class RefundRow(SQLModel, table=True):
    __tablename__ = "erp_refunds"
    key: str = Field(primary_key=True)
    payment_id: str = Field(index=True)
    amount: Decimal = money()
    refund_id: str


class CreditNoteRow(SQLModel, table=True):
    __tablename__ = "erp_credit_notes"
    id: str = Field(primary_key=True)
    key: str = Field(unique=True)
    invoice_id: str = Field(index=True)
    customer_id: str
    amount: Decimal = money()
    currency: str
    reason: str
    created_at: datetime = stamp()


class LedgerEntryRow(SQLModel, table=True):
    __tablename__ = "erp_ledger_entries"
    id: str = Field(primary_key=True)
    key: str = Field(unique=True)
    memo: str
    currency: str
    created_at: datetime = stamp()


class LedgerPostingRow(SQLModel, table=True):
    __tablename__ = "erp_ledger_postings"
    id: int | None = Field(default=None, primary_key=True)
    entry_id: str = Field(index=True, foreign_key="erp_ledger_entries.id")
    account: str = Field(index=True)
    currency: str
    debit: Decimal = money()
    credit: Decimal = money()


class DocumentRow(SQLModel, table=True):
    """Read models of processes (quote, order …) written by their workflows."""

    __tablename__ = "erp_documents"
    kind: str = Field(primary_key=True)
    doc_id: str = Field(primary_key=True)
    customer_id: str = Field(index=True)
    body: dict[str, Any] = json_col()
    updated_at: datetime = stamp()


class ApiKeyRow(SQLModel, table=True):
    __tablename__ = "platform_api_keys"
    id: str = Field(primary_key=True)
    name: str
    role: str
    prefix: str
    secret_hash: str = Field(unique=True)
    created_at: datetime = stamp()


class IdempotencyRow(SQLModel, table=True):
    __tablename__ = "platform_idempotency"
    scope: str = Field(primary_key=True)
    key: str = Field(primary_key=True)
    request_hash: str
    status: int
    body: str
    created_at: datetime = stamp()


class ClockRow(SQLModel, table=True):
    __tablename__ = "platform_test_clocks"
    id: str = Field(primary_key=True)
    frozen_time: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    status: str = "ready"
    created_at: datetime = stamp()


class ClockProcessRow(SQLModel, table=True):
    """A process that lives on a test clock, registered by its starter before it starts, so
    the clock reaches it before Temporal's visibility (eventually consistent) lists it."""

    __tablename__ = "platform_clock_processes"
    clock_id: str = Field(primary_key=True)
    process_id: str = Field(primary_key=True)
    registered_at: datetime = stamp()


class FaultRow(SQLModel, table=True):
    __tablename__ = "platform_faults"
    system: str = Field(primary_key=True)
    mode: str = "ok"
