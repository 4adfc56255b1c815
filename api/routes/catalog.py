"""Catalog and stock: products, plans, partners, inventory."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from temporalio.service import RPCError

from api.deps import Admin, ErpDep, StateDep, Viewer
from api.errors import TemporalUnavailable
from api.idempotency import IDEMPOTENT, idempotent
from systems.records import (
    Inventory,
    InventoryAdjustment,
    Partner,
    PartnerCreate,
    Plan,
    PlanCreate,
    Product,
    ProductCreate,
)

router = APIRouter(prefix="/v1", tags=["catalog"])
log = logging.getLogger("o2c.api")


@router.post("/products", status_code=201, response_model=Product, openapi_extra=IDEMPOTENT)
async def create_product(
    body: ProductCreate, request: Request, who: Admin, erp: ErpDep
) -> Response:
    """Create a product (physical with stock, service, or third-party with a vendor)."""
    return await idempotent(
        request, who, erp, 201, lambda _: run_in_threadpool(erp.create_product, body)
    )


@router.get("/products/{sku}", response_model=Product)
def get_product(sku: str, _: Viewer, erp: ErpDep) -> Product:
    """A product by SKU."""
    return erp.get_product(sku)


@router.post("/plans", status_code=201, response_model=Plan, openapi_extra=IDEMPOTENT)
async def create_plan(body: PlanCreate, request: Request, who: Admin, erp: ErpDep) -> Response:
    """Create a subscription plan with its usage charges."""
    return await idempotent(
        request, who, erp, 201, lambda _: run_in_threadpool(erp.create_plan, body)
    )


@router.get("/plans/{code}", response_model=Plan)
def get_plan(code: str, _: Viewer, erp: ErpDep) -> Plan:
    """A plan by code."""
    return erp.get_plan(code)


@router.post("/partners", status_code=201, response_model=Partner, openapi_extra=IDEMPOTENT)
async def create_partner(
    body: PartnerCreate, request: Request, who: Admin, erp: ErpDep
) -> Response:
    """Create a partner with its agreement."""
    return await idempotent(
        request, who, erp, 201, lambda _: run_in_threadpool(erp.create_partner, body)
    )


@router.get("/partners/{partner_id}", response_model=Partner)
def get_partner(partner_id: str, _: Viewer, erp: ErpDep) -> Partner:
    """A partner."""
    return erp.get_partner(partner_id)


@router.get("/inventory/{sku}", response_model=Inventory)
def get_inventory(sku: str, _: Viewer, erp: ErpDep) -> Inventory:
    """Stock of a SKU: on hand, reserved, available."""
    return erp.inventory(sku)


@router.post("/inventory/{sku}/adjustments", response_model=Inventory, openapi_extra=IDEMPOTENT)
async def adjust_inventory(
    sku: str, body: InventoryAdjustment, request: Request, who: Admin, state: StateDep
) -> Response:
    """Adjust stock on hand (once per ``Idempotency-Key``); orders waiting for this SKU
    re-check availability."""
    erp = state.systems.erp

    async def adjust(_: Callable[[str], str]) -> Inventory:
        stock = await run_in_threadpool(erp.adjust_inventory, sku, body.delta, body.reason)
        if body.delta > 0:
            waiting = await run_in_threadpool(erp.take_backorders, sku)
            await _wake(state, waiting)
        return stock

    return await idempotent(request, who, erp, 200, adjust)


async def _wake(state: StateDep, process_ids: list[str]) -> None:
    """Tell backordered processes that stock arrived (they also re-check on a timer)."""
    if not process_ids:
        return
    try:
        client = await state.temporal.get()
    except TemporalUnavailable:
        log.warning(
            "stock changed but Temporal is unreachable: %s re-check on their timer",
            ", ".join(process_ids),
        )
        return
    for pid in process_ids:
        try:
            await client.get_workflow_handle(pid).signal("stock_changed")
        except RPCError as exc:
            log.info("backordered process %s not signalled: %s", pid, exc.message)
