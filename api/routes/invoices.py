"""Invoices: list, read, record a payment received."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ClientRole, ErpDep, Viewer
from api.idempotency import IDEMPOTENT, idempotent
from domain.money import PositiveAmount
from systems.records import Invoice, InvoiceStatus, Page, Payment, PaymentMethodKind

router = APIRouter(prefix="/v1/invoices", tags=["invoices"])


class PaymentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: PositiveAmount
    method: PaymentMethodKind
    reference: str = Field(min_length=1, max_length=200)


@router.get("", response_model=Page[Invoice])
def list_(
    _: Viewer,
    erp: ErpDep,
    customer_id: str | None = None,
    status: InvoiceStatus | None = None,
    limit: int = Query(50, ge=1, le=100),
    cursor: str | None = None,
) -> Page[Invoice]:
    """Invoices, filtered by customer and status."""
    return erp.list_invoices(customer_id, status, limit, cursor)


@router.get("/{invoice_id}", response_model=Invoice)
def get(invoice_id: str, _: Viewer, erp: ErpDep) -> Invoice:
    """An invoice."""
    return erp.get_invoice(invoice_id)


@router.post(
    "/{invoice_id}/payments", status_code=201, response_model=Payment, openapi_extra=IDEMPOTENT
)
async def record_payment(
    invoice_id: str, body: PaymentCreate, request: Request, who: ClientRole, erp: ErpDep
) -> Response:
    """Record a payment received (bank transfer, card, cash) against the invoice."""

    async def record(make_id: Callable[[str], str]) -> Payment:
        key = f"api:{make_id('pay')}"
        return await run_in_threadpool(
            erp.record_payment, key, invoice_id, body.amount, body.method, body.reference
        )

    return await idempotent(request, who, erp, 201, record)
