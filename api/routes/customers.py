"""Customers: master data, the account view, the 360° overview, cards and price books."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from api.deps import Admin, ClientRole, ErpDep, StateDep, Viewer
from api.idempotency import IDEMPOTENT, idempotent
from domain.errors import InvalidInput
from domain.money import quantize
from systems.ports import Erp
from systems.records import (
    Account,
    Customer,
    CustomerCreate,
    Invoice,
    Page,
    Payment,
    PaymentMethodCreate,
    PriceBook,
    PriceItem,
)

router = APIRouter(prefix="/v1/customers", tags=["customers"])


class PaymentMethodPublic(BaseModel):
    id: str
    brand: str
    last4: str


class Overview(BaseModel):
    customer: Customer
    account: Account
    open_invoices: list[Invoice]
    orders: list[dict[str, Any]]
    subscriptions: list[dict[str, Any]]
    payments: list[Payment]
    disputes: list[dict[str, Any]]
    lifetime_value: str


def customer_today(erp: Erp, customer: Customer) -> datetime:
    """The customer's now: its test clock's time, else the wall clock's."""
    if customer.test_clock_id:
        return erp.get_clock(customer.test_clock_id).frozen_time
    return datetime.now(UTC)


def _with_account(erp: Erp, customer_id: str) -> Customer:
    """The customer and its account as of one moment (one read transaction; the customer
    is read first only to learn whose clock says what day it is)."""
    today = customer_today(erp, erp.get_customer(customer_id)).date()
    view = erp.credit_view(customer_id, today)
    return view.customer.model_copy(update={"account": view.account})


@router.post("", status_code=201, response_model=Customer, openapi_extra=IDEMPOTENT)
async def create(body: CustomerCreate, request: Request, who: Admin, erp: ErpDep) -> Response:
    """Create a customer."""
    return await idempotent(
        request, who, erp, 201, lambda _: run_in_threadpool(erp.create_customer, body)
    )


@router.get("", response_model=Page[Customer])
def list_(
    _: Viewer, erp: ErpDep, limit: int = Query(50, ge=1, le=100), cursor: str | None = None
) -> Page[Customer]:
    """List customers."""
    return erp.list_customers(limit, cursor)


@router.get("/{customer_id}", response_model=Customer)
def get(customer_id: str, _: Viewer, erp: ErpDep) -> Customer:
    """A customer with its account: open AR, overdue, credit available."""
    return _with_account(erp, customer_id)


@router.get("/{customer_id}/overview", response_model=Overview)
def overview(customer_id: str, _: Viewer, erp: ErpDep) -> Overview:
    """The 360° view of a customer."""
    c = _with_account(erp, customer_id)
    assert c.account is not None
    payments = erp.payments_for_customer(c.id)
    invoices = erp.list_invoices(c.id, "open", 100, None).data
    ltv = sum((p.amount - p.refunded for p in payments), Decimal(0))
    return Overview(
        customer=c,
        account=c.account,
        open_invoices=invoices,
        orders=erp.list_documents("order", c.id),
        subscriptions=erp.list_documents("subscription", c.id),
        payments=payments,
        disputes=[],
        lifetime_value=format(quantize(ltv, c.currency), "f"),
    )


@router.post(
    "/{customer_id}/payment-methods",
    status_code=201,
    response_model=PaymentMethodPublic,
    openapi_extra=IDEMPOTENT,
)
async def add_payment_method(
    customer_id: str,
    body: PaymentMethodCreate,
    request: Request,
    who: ClientRole,
    state: StateDep,
) -> Response:
    """Tokenise a card at the gateway; it becomes the default method."""
    erp, gateway = state.systems.erp, state.systems.gateway

    async def create(_: Any) -> PaymentMethodPublic:
        await run_in_threadpool(erp.get_customer, customer_id)
        token = await gateway.tokenize(body.card_number, body.exp_month, body.exp_year, body.cvc)
        pm = await run_in_threadpool(
            erp.add_payment_method,
            customer_id,
            token.token,
            token.brand,
            token.last4,
            body.exp_month,
            body.exp_year,
        )
        return PaymentMethodPublic(id=pm.id, brand=pm.brand, last4=pm.last4)

    return await idempotent(request, who, erp, 201, create, compared=_card_compared)


def _card_compared(body: dict[str, Any], pepper: bytes) -> dict[str, Any]:
    """What tells two card requests apart without keeping what could rebuild the card: the
    number and CVC only as a MAC under the caller's ``pepper`` (a search of the 10^5 or so
    numbers with a known start and end needs the caller's key), and the expiry."""
    number = str(body["card_number"]).replace(" ", "")
    card = hmac.new(pepper, f"{number}:{body['cvc']}".encode(), "sha256").hexdigest()
    return {"card": card, "exp": [body["exp_month"], body["exp_year"]]}


@router.put("/{customer_id}/prices", response_model=PriceBook)
def set_prices(customer_id: str, body: PriceBook, _: Admin, erp: ErpDep) -> PriceBook:
    """Replace the customer's price book (customer-specific prices)."""
    keys = [(x.sku, x.plan_code) for x in body.items]
    if len(keys) != len(set(keys)):
        raise InvalidInput("each sku or plan_code may appear once")
    items: list[PriceItem] = erp.set_prices(customer_id, body.items)
    return PriceBook(items=items)


@router.get("/{customer_id}/prices", response_model=PriceBook)
def get_prices(customer_id: str, _: Viewer, erp: ErpDep) -> PriceBook:
    """The customer's price book."""
    return PriceBook(items=erp.get_prices(customer_id))
