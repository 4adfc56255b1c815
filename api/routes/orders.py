"""Orders: place one directly, read it live, carrier events, release a hold, cancel."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request, Response

from api import process
from api.deps import AppState, ClientRole, Operator, StateDep, Viewer
from api.idempotency import IDEMPOTENT, idempotent
from systems.quoting import process_input
from workflows.contracts.quote_to_order import (
    CancelRequest,
    NoteRequest,
    Order,
    OrderCreate,
    ShipmentEvent,
    ShipmentEventUpdate,
    initial_order,
)

router = APIRouter(prefix="/v1/orders", tags=["orders"])


@router.post("", status_code=201, response_model=Order, openapi_extra=IDEMPOTENT)
async def create(body: OrderCreate, request: Request, who: ClientRole, state: StateDep) -> Response:
    """Place an order without a quote (list or price-book prices); bad input is refused
    before Temporal is needed."""
    erp, settings = state.systems.erp, state.settings

    async def start(make_id: Callable[[str], str]) -> Order:
        priced, now, clock = await process.price_order(
            erp, settings, body.customer_id, body.lines, body.payment, body.partner_id
        )
        inp = process_input(
            priced,
            quote_id=None,
            order_id=make_id("ord"),
            created_at=now,
            clock=clock,
            partner_id=body.partner_id,
            payment=body.payment,
        )
        order = initial_order(inp, body.payment, now)
        await process.start(await state.temporal.get(), erp, settings, inp, order)
        return order

    return await idempotent(request, who, erp, 201, start)


@router.get("/{order_id}", response_model=Order)
async def get(order_id: str, _: Viewer, state: StateDep) -> Response:
    """An order, live: status, steps, shipments, invoices (from its read model, so it
    answers while Temporal is unreachable)."""
    return process.answer(await process.read_order(state.temporal, state.systems.erp, order_id))


async def _update(state: AppState, order_id: str, name: str, body: object) -> Order:
    # The process first (it names the order's process and customer on the log lines, a
    # 503 for Temporal's absence included), then Temporal.
    pid = await process.order_process(state.systems.erp, order_id)
    client = await state.temporal.get()
    return await process.update(client, pid, name, body, Order, subject=("order", order_id))


@router.post("/{order_id}/shipments/{shipment_id}/events", response_model=Order)
async def shipment_event(
    order_id: str, shipment_id: str, body: ShipmentEvent, _: ClientRole, state: StateDep
) -> Order:
    """The carrier's callback: a shipment was shipped or delivered."""
    event = ShipmentEventUpdate(
        shipment_id=shipment_id, event=body.event, tracking_number=body.tracking_number
    )
    return await _update(state, order_id, "shipment_event", event)


@router.post("/{order_id}/release", response_model=Order)
async def release(
    order_id: str, _: Operator, state: StateDep, body: NoteRequest | None = None
) -> Order:
    """Release a credit hold (operator)."""
    return await _update(state, order_id, "release", body or NoteRequest())


@router.post("/{order_id}/cancel", response_model=Order)
async def cancel(order_id: str, body: CancelRequest, _: Operator, state: StateDep) -> Order:
    """Cancel the order; what was done is compensated (operator)."""
    return await _update(state, order_id, "cancel", body)
