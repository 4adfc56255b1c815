"""Ports: what o2c needs from each system of record, as Protocols.

Activities and the API depend on these only. Every method that changes something takes an
idempotency ``key`` (process id + step, or the client's Idempotency-Key) and the adapter
enforces it: the same key returns the first result and changes nothing more.

Errors: business refusals raise ``domain.errors.DomainError`` subclasses (``NotFound``,
``Conflict``, ``OutOfStock``, ``CardDeclined`` …); technical failures (a system down or
timing out) raise ``domain.errors.SystemUnavailable`` and are retried by the caller.
The ERP is synchronous (SQL through SQLModel; callers run it in threads); the payment
gateway and notifier are asynchronous network systems.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from systems.records import (
    ApiKey,
    CatalogLine,
    ChargeView,
    CreditCommitment,
    CreditNote,
    CreditView,
    Customer,
    CustomerCreate,
    DraftInvoice,
    Fault,
    FaultMode,
    GatewayCharge,
    Inventory,
    Invoice,
    InvoiceStatus,
    LedgerEntry,
    Page,
    Partner,
    PartnerCreate,
    Payment,
    PaymentMethod,
    PaymentMethodKind,
    Plan,
    PlanCreate,
    PriceItem,
    Product,
    ProductCreate,
    Role,
    SalesOrder,
    SystemName,
    TestClock,
)


class Erp(Protocol):
    """The embedded ERP: master data, stock, sales orders, invoices, AR and the ledger."""

    # customers and master data
    def create_customer(self, data: CustomerCreate) -> Customer: ...
    def get_customer(self, customer_id: str) -> Customer: ...
    def credit_view(self, customer_id: str, as_of: date) -> CreditView: ...
    def has_payment_method(self, customer_id: str) -> bool: ...
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
        """Check ``amount`` against open AR + open orders + the limit and, if it fits (or
        ``force``), commit it under ``key``, in one transaction; idempotent by key."""
        ...

    def release_credit(self, key: str) -> None: ...
    def list_customers(self, limit: int, cursor: str | None) -> Page[Customer]: ...
    def set_prices(self, customer_id: str, items: list[PriceItem]) -> list[PriceItem]: ...
    def get_prices(self, customer_id: str) -> list[PriceItem]: ...
    def add_payment_method(
        self, customer_id: str, token: str, brand: str, last4: str, exp_month: int, exp_year: int
    ) -> PaymentMethod: ...
    def create_product(self, data: ProductCreate) -> Product: ...
    def get_product(self, sku: str) -> Product: ...
    def create_plan(self, data: PlanCreate) -> Plan: ...
    def get_plan(self, code: str) -> Plan: ...
    def create_partner(self, data: PartnerCreate) -> Partner: ...
    def get_partner(self, partner_id: str) -> Partner: ...
    def catalog_lines(
        self, customer_id: str, items: list[tuple[str | None, str | None]]
    ) -> list[CatalogLine]:
        """Price each (sku, plan_code) for the customer: price book, then list price.

        Raises ``InvalidInput`` for an unknown sku/plan or a currency other than the
        customer's."""
        ...

    # inventory: reservations are idempotent by key; a key reserves all lines or none
    def inventory(self, sku: str) -> Inventory: ...
    def adjust_inventory(self, sku: str, delta: int, reason: str) -> Inventory: ...
    def reserve(self, key: str, order_id: str, lines: dict[str, int]) -> None: ...
    def release(self, key: str) -> list[str]:
        """Free a reservation; the processes waiting for its SKUs (left on the wait list)."""
        ...

    def commit_reservation(
        self, key: str, lines: dict[str, int] | None = None, order_id: str = ""
    ) -> None:
        """Deduct the reservation under ``key`` (or, with none, ``lines``) from stock."""
        ...

    def add_backorder(self, process_id: str, skus: list[str]) -> None: ...
    def take_backorders(self, sku: str) -> list[str]:
        """Process ids waiting on ``sku``; they are removed from the wait list."""
        ...

    # sales orders
    def create_sales_order(
        self, key: str, order_id: str, customer_id: str, total: Decimal, currency: str
    ) -> SalesOrder: ...
    def cancel_sales_order(self, key: str, order_id: str) -> SalesOrder: ...

    # invoices, payments, credit notes — each posts a balanced ledger entry
    def issue_invoice(self, key: str, draft: DraftInvoice) -> Invoice: ...
    def get_invoice(self, invoice_id: str) -> Invoice: ...
    def charge_view(self, invoice_id: str, customer_id: str) -> ChargeView: ...
    def list_invoices(
        self, customer_id: str | None, status: InvoiceStatus | None, limit: int, cursor: str | None
    ) -> Page[Invoice]: ...
    def void_invoice(self, key: str, invoice_id: str) -> Invoice: ...
    def record_payment(
        self,
        key: str,
        invoice_id: str,
        amount: Decimal,
        method: PaymentMethodKind,
        reference: str,
        charge_id: str | None = None,
    ) -> Payment: ...
    def payments_for_invoice(self, invoice_id: str) -> list[Payment]: ...
    def payments_for_customer(self, customer_id: str) -> list[Payment]: ...
    def issue_credit_note(
        self, key: str, invoice_id: str, amount: Decimal, reason: str
    ) -> CreditNote: ...
    def record_refund(
        self, key: str, payment_id: str, amount: Decimal, refund_id: str
    ) -> Payment: ...
    def refunds_recorded(self, keys: list[str]) -> Decimal: ...
    def ledger_entries(self, limit: int = 100) -> list[LedgerEntry]: ...
    def trial_balance(self, currency: str) -> dict[str, Decimal]: ...

    # process read models (snapshots written by workflows through activities)
    def save_document(
        self,
        kind: str,
        doc_id: str,
        customer_id: str,
        body: dict[str, Any],
        *,
        only_new: bool = False,
    ) -> bool: ...
    def get_document(self, kind: str, doc_id: str) -> dict[str, Any]: ...
    def list_documents(self, kind: str, customer_id: str) -> list[dict[str, Any]]: ...

    # platform: api keys, idempotency records, test clocks, sandbox faults
    def create_api_key(self, name: str, role: Role) -> tuple[ApiKey, str]: ...
    def authenticate(self, secret: str) -> ApiKey | None: ...
    def idempotency_get(self, scope: str, key: str) -> tuple[str, int, str] | None:
        """(request hash, status code, response body) stored under (scope, key)."""
        ...

    def idempotency_put(
        self, scope: str, key: str, request_hash: str, status: int, body: str
    ) -> tuple[str, int, str]:
        """Store once; returns what is stored (the first writer wins)."""
        ...

    def idempotency_claim(
        self, scope: str, key: str, request_hash: str, stale_after: timedelta
    ) -> tuple[str, int, str] | None:
        """Claim (scope, key) for a request about to run: None when the caller now holds
        it, else what is stored — status 0 while the holder's request is still under way.
        A claim older than ``stale_after`` (its holder died) is taken over."""
        ...

    def idempotency_complete(
        self, scope: str, key: str, status: int, body: str
    ) -> tuple[str, int, str]:
        """Store the answer of the request that holds the claim; returns what is stored."""
        ...

    def idempotency_release(self, scope: str, key: str) -> None:
        """Give up a claim whose request failed: the key may be used again."""
        ...

    def create_clock(self, frozen_time: datetime) -> TestClock: ...
    def get_clock(self, clock_id: str) -> TestClock: ...
    def advance_clock(self, clock_id: str, frozen_time: datetime) -> TestClock: ...
    def mark_clock_ready(self, clock_id: str, seen: datetime) -> TestClock: ...
    def register_clock_process(self, clock_id: str, process_id: str) -> None:
        """Record a process on the clock before it starts (idempotent)."""
        ...

    def clock_processes(self, clock_id: str) -> dict[str, datetime]:
        """The processes registered on the clock: id → registration time."""
        ...

    def forget_clock_processes(self, clock_id: str, process_ids: list[str]) -> None:
        """Drop processes found ended from the clock's register."""
        ...

    def set_fault(self, system: SystemName, mode: FaultMode) -> Fault: ...
    def faults(self) -> list[Fault]: ...
    def ping(self) -> None:
        """Raise when the database cannot be reached (readiness)."""
        ...


class CardToken(Protocol):
    @property
    def token(self) -> str: ...
    @property
    def brand(self) -> str: ...
    @property
    def last4(self) -> str: ...


class PaymentGateway(Protocol):
    """A card gateway: tokens instead of card numbers, idempotent charges and refunds."""

    async def tokenize(
        self, card_number: str, exp_month: int, exp_year: int, cvc: str
    ) -> CardToken: ...
    async def charge(
        self, key: str, token: str, amount: Decimal, currency: str, description: str
    ) -> str:
        """Charge once per ``key``; returns the charge id (the first one on a retry).

        Raises ``CardDeclined`` (business) or ``SystemUnavailable`` (retry)."""
        ...

    async def refund(self, key: str, charge_id: str, amount: Decimal) -> str: ...
    async def succeeded_charge(self, key: str) -> GatewayCharge | None:
        """The successful charge made for ``key``, if any (a charge whose answer was lost
        to a timeout is found here)."""
        ...

    async def charges_for_key(self, key: str) -> int:
        """How many charges exist for ``key`` (0 or 1): for audits and tests."""
        ...


class Notifier(Protocol):
    """Outbound messages; one message per idempotency key."""

    async def send_email(self, key: str, to: str, subject: str, body: str) -> str: ...

    def close(self) -> None:
        """Release what the notifier keeps open between messages (its process stops)."""
        ...


class FaultSwitch(Protocol):
    """Reads the sandbox fault mode of a system (``ok`` unless set)."""

    def mode(self, system: SystemName) -> FaultMode: ...
