"""Records QuoteToOrder histories into tests/histories/ for the replay tests.

Run against the current code before changing a workflow that may have running executions:
``python -m tests.workflow.record_histories [SCENARIO ...]`` (all when none is named). Each
scenario leaves one JSON history; record only new scenarios, since a history from released
code must keep replaying as it was recorded.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.faults import Faults
from clients import register_search_attributes
from settings import Settings
from systems.db import create_schema, make_engine
from systems.erp.embedded import EmbeddedErp
from systems.payments.sandbox import SandboxGateway
from systems.records import ProductCreate
from systems.registry import Systems
from tests.conftest import binary
from tests.factories import add_card, catalog, customer
from tests.fakes.notifier import FakeNotifier
from tests.workflow.conftest import Harness
from worker import build_worker
from workflows.contracts.common import SkipRequest
from workflows.contracts.quote_to_order import (
    AcceptRequest,
    CancelRequest,
    NoteRequest,
    Order,
    PaymentTerms,
    ShipmentEventUpdate,
)

OUT = Path(__file__).parent.parent / "histories"


async def record(names: list[str]) -> None:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    await register_search_attributes(env.client)
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/o2c.db")
        create_schema(engine)
        erp, gateway = EmbeddedErp(engine), SandboxGateway(engine)
        systems = Systems(erp=erp, gateway=gateway, notifier=FakeNotifier())
        queue = f"record-{uuid.uuid4()}"
        async with build_worker(
            env.client,
            systems,
            Settings(sandbox=True),
            task_queue=queue,
            faults=Faults(erp, True, 0),
        ):
            h = Harness(env, systems, FakeNotifier(), gateway, queue)
            catalog(erp)
            c = customer(erp)
            await add_card(erp, gateway, c.id)
            OUT.mkdir(exist_ok=True)
            for name, scenario in SCENARIOS.items():
                if not names or name in names:
                    history = await scenario(h, c.id)
                    (OUT / f"{name}.json").write_text(history.to_json())
    await env.shutdown()


async def _approved_quote(h: Harness, cid: str) -> WorkflowHistory:
    handle = await h.start(await h.input(cid, [{"sku": "SETUP", "quantity": 1}], discount="0.25"))
    await handle.execute_update("approve", NoteRequest(note="ok"))
    await handle.execute_update("accept", AcceptRequest(payment="card_on_file"))
    await handle.result()
    return await handle.fetch_history()


async def _shipped_order(h: Harness, cid: str) -> WorkflowHistory:
    inp = await h.input(cid, [{"sku": "WIDGET-1", "quantity": 2}], quote=False, payment="invoice")
    handle = await h.start(inp)
    order = await h.until(handle, "order", Order, lambda o: o.status == "fulfilling")
    sid = order.shipments[0].id
    await handle.execute_update(
        "shipment_event", ShipmentEventUpdate(shipment_id=sid, event="shipped")
    )
    await handle.execute_update(
        "shipment_event", ShipmentEventUpdate(shipment_id=sid, event="delivered")
    )
    await handle.result()
    return await handle.fetch_history()


async def _api_started_card_order(h: Harness, cid: str) -> WorkflowHistory:
    """A service order as the API starts it: the API wrote the first read model."""
    inp = await h.input(cid, [{"sku": "SETUP", "quantity": 1}], quote=False, payment="card_on_file")
    handle = await h.start(inp.model_copy(update={"first_document_saved": True}))
    await handle.result()
    return await handle.fetch_history()


async def _order_with_credit_at_placement(h: Harness, cid: str) -> WorkflowHistory:
    """A service order as the API starts it since it reads the credit position at placement."""
    inp = await h.input(
        cid, [{"sku": "SETUP", "quantity": 1}], quote=False, payment="card_on_file", credit=True
    )
    handle = await h.start(inp.model_copy(update={"first_document_saved": True}))
    await handle.result()
    return await handle.fetch_history()


async def _backordered_order(h: Harness, cid: str) -> WorkflowHistory:
    """An order beyond the stock: backordered until a restock's signal."""
    h.erp.create_product(
        ProductCreate(
            sku="BOLT-9",
            name="Bolt",
            kind="physical",
            unit_price=Decimal("1.50"),
            currency="EUR",
            stock=0,
        )
    )
    inp = await h.input(cid, [{"sku": "BOLT-9", "quantity": 5}], quote=False, payment="invoice")
    handle = await h.start(inp)
    await h.until(handle, "order", Order, lambda o: o.status == "backordered")
    h.erp.adjust_inventory("BOLT-9", 10, "delivery")
    assert h.erp.take_backorders("BOLT-9") == [handle.id]
    await handle.signal("stock_changed")
    order = await h.until(handle, "order", Order, lambda o: o.status == "fulfilling")
    sid = order.shipments[0].id
    for event in ("shipped", "delivered"):
        await handle.execute_update(
            "shipment_event",
            ShipmentEventUpdate(shipment_id=sid, event=event),
        )
    await handle.result()
    return await handle.fetch_history()


async def _cancelled_while_fulfilling(
    h: Harness, cid: str, payment: PaymentTerms, reason: str
) -> WorkflowHistory:
    """A service and a widget ordered, then cancelled while waiting for the carrier."""
    lines = [{"sku": "SETUP", "quantity": 1}, {"sku": "WIDGET-1", "quantity": 1}]
    handle = await h.start(await h.input(cid, lines, quote=False, payment=payment))
    await h.until(handle, "order", Order, lambda o: o.status == "fulfilling")
    await h.update_accepted(handle, "cancel", CancelRequest(reason=reason))
    await handle.result()
    return await handle.fetch_history()


async def _cancelled_card_order(h: Harness, cid: str) -> WorkflowHistory:
    """A paid card order cancelled while it waits for the carrier: compensation refunds."""
    return await _cancelled_while_fulfilling(h, cid, "card_on_file", "duplicate")


async def _skipped_charge(h: Harness, cid: str) -> WorkflowHistory:
    """A card order whose charge step an operator skipped while the gateway was down."""
    h.set_fault("payments", "down")
    inp = await h.input(cid, [{"sku": "SETUP", "quantity": 1}], quote=False, payment="card_on_file")
    handle = await h.start(inp)
    await h.env.sleep(timedelta(minutes=2))
    await h.until(handle, "order", Order, lambda o: o.status == "needs_attention")
    h.set_fault("payments", "ok")
    await h.update_accepted(handle, "skip", SkipRequest(result={}))
    await handle.result()
    return await handle.fetch_history()


async def _split_invoiced_order(h: Harness, cid: str) -> WorkflowHistory:
    """Services invoiced at confirmation, goods when shipped, at a discount: two invoices
    whose separate roundings the order's total does not match."""
    lines = [{"sku": "SETUP", "quantity": 1}, {"sku": "WIDGET-1", "quantity": 1}]
    handle = await h.start(await h.input(cid, lines, discount="0.15"))
    await handle.execute_update("accept", AcceptRequest(payment="card_on_file"))
    order = await h.until(handle, "order", Order, lambda o: o.status == "fulfilling")
    for event in ("shipped", "delivered"):
        await handle.execute_update(
            "shipment_event",
            ShipmentEventUpdate(shipment_id=order.shipments[0].id, event=event),
        )
    await handle.result()
    return await handle.fetch_history()


async def _refund_skipped_by_hand(h: Harness, cid: str) -> WorkflowHistory:
    """A cancelled order whose invoice was paid in part by transfer: the refund step asks
    an operator, who refunds the transfer by hand and skips it."""
    lines = [{"sku": "SETUP", "quantity": 1}, {"sku": "WIDGET-1", "quantity": 1}]
    handle = await h.start(await h.input(cid, lines, quote=False, payment="invoice"))
    order = await h.until(handle, "order", Order, lambda o: o.status == "fulfilling")
    h.erp.record_payment("bank:wire", order.invoice_ids[0], Decimal("10.00"), "bank_transfer", "w")
    await h.update_accepted(handle, "cancel", CancelRequest(reason="changed plans"))
    await h.until(handle, "order", Order, lambda o: o.failed_step is not None)
    await h.update_accepted(handle, "skip", SkipRequest(result={"refunded": "10.00"}))
    await handle.result()
    return await handle.fetch_history()


async def _cancel_answered_during_retries(h: Harness, cid: str) -> WorkflowHistory:
    """A cancel answered while its compensation retries against an ERP that is down (the
    answer's timer, then the retries, then the cancel completes)."""
    lines = [{"sku": "SETUP", "quantity": 1}, {"sku": "WIDGET-1", "quantity": 1}]
    handle = await h.start(await h.input(cid, lines, quote=False, payment="invoice"))
    await h.until(handle, "order", Order, lambda o: o.status == "fulfilling")
    h.set_fault("erp", "down")
    await handle.execute_update("cancel", CancelRequest(reason="changed plans"))
    h.set_fault("erp", "ok")
    await handle.result()
    return await handle.fetch_history()


async def _credit_held_then_released(h: Harness, _cid: str) -> WorkflowHistory:
    """An order over its customer's limit (open orders counted): held, released by an
    operator (the release commits it), invoiced and completed."""
    low = customer(h.erp, credit_limit="100.00", name="Low Limit Ltd").id
    handle = await h.start(
        await h.input(low, [{"sku": "SETUP", "quantity": 1}], quote=False, payment="invoice")
    )
    await h.until(handle, "order", Order, lambda o: o.status == "credit_hold")
    await handle.execute_update("release", NoteRequest(note="known customer"), result_type=Order)
    await handle.result()
    return await handle.fetch_history()


async def _credit_given_back_on_cancel(h: Harness, cid: str) -> WorkflowHistory:
    """A committed order cancelled while fulfilling: its compensation releases the credit."""
    return await _cancelled_while_fulfilling(h, cid, "invoice", "changed plans")


async def _cancel_wakes_backorder(h: Harness, cid: str) -> WorkflowHistory:
    """A cancelled order whose released stock wakes another order waiting for it (the
    waiting order is cancelled after, so the recording ends)."""
    eight = [{"sku": "WIDGET-1", "quantity": 8}]
    handle = await h.start(await h.input(cid, eight, quote=False, payment="invoice"))
    await h.until(handle, "order", Order, lambda o: o.status == "fulfilling")
    waiting = await h.start(await h.input(cid, eight, quote=False, payment="invoice"))
    await h.until(waiting, "order", Order, lambda o: o.status == "backordered")
    await h.update_accepted(handle, "cancel", CancelRequest(reason="changed plans"))
    await h.until(waiting, "order", Order, lambda o: o.status == "fulfilling")
    await h.update_accepted(waiting, "cancel", CancelRequest(reason="changed plans"))
    await waiting.result()
    await handle.result()
    return await handle.fetch_history()


async def _long_backorder(h: Harness, cid: str) -> WorkflowHistory:
    """A backorder that waits 10 hours (re-checks backing off: 1, 2, 4 h …), then stock
    arrives and the order is cancelled."""
    twelve = [{"sku": "WIDGET-1", "quantity": 12}]
    handle = await h.start(await h.input(cid, twelve, quote=False, payment="invoice"))
    await h.until(handle, "order", Order, lambda o: o.status == "backordered")
    await h.env.sleep(timedelta(hours=10))
    h.erp.adjust_inventory("WIDGET-1", 5, "delivery")
    await handle.signal("stock_changed")
    await h.until(handle, "order", Order, lambda o: o.status == "fulfilling")
    await h.update_accepted(handle, "cancel", CancelRequest(reason="changed plans"))
    await handle.result()
    return await handle.fetch_history()


async def _charge_retried_in_view(h: Harness, cid: str) -> WorkflowHistory:
    """A charge whose first attempt fails (the gateway down a moment): the view is saved
    showing it retrying, then the attempts left succeed."""
    h.set_fault("payments", "down")
    inp = await h.input(cid, [{"sku": "SETUP", "quantity": 1}], quote=False, payment="card_on_file")
    handle = await h.start(inp)
    await h.until(handle, "order", Order, lambda o: bool(o.steps) and o.steps[-1].error is not None)
    h.set_fault("payments", "ok")
    await handle.result()
    return await handle.fetch_history()


async def _skipped_stock_commit(h: Harness, cid: str) -> WorkflowHistory:
    """A shipment whose stock commit an operator skips: the reservation is released."""
    lines = [{"sku": "WIDGET-1", "quantity": 2}]
    handle = await h.start(await h.input(cid, lines, quote=False, payment="invoice"))
    order = await h.until(handle, "order", Order, lambda o: o.status == "fulfilling")
    sid = order.shipments[0].id
    h.set_fault("erp", "down")
    await handle.execute_update(
        "shipment_event", ShipmentEventUpdate(shipment_id=sid, event="shipped")
    )
    await h.env.sleep(timedelta(minutes=2))
    await h.until(handle, "order", Order, lambda o: o.failed_step is not None)
    h.set_fault("erp", "ok")
    await h.update_accepted(handle, "skip", SkipRequest(result={}))
    await h.until(handle, "order", Order, lambda o: len(o.invoice_ids) == 1)
    await h.update_accepted(
        handle, "shipment_event", ShipmentEventUpdate(shipment_id=sid, event="delivered")
    )
    await handle.result()
    return await handle.fetch_history()


SCENARIOS: dict[str, Callable[[Harness, str], Awaitable[WorkflowHistory]]] = {
    "q2o-approved-quote-card": _approved_quote,
    "q2o-shipped-order-invoice": _shipped_order,
    "q2o-api-started-card-order": _api_started_card_order,
    "q2o-order-credit-at-placement": _order_with_credit_at_placement,
    "q2o-backordered-order": _backordered_order,
    "q2o-cancelled-card-order": _cancelled_card_order,
    "q2o-skipped-charge": _skipped_charge,
    "q2o-split-invoiced-order": _split_invoiced_order,
    "q2o-refund-skipped-by-hand": _refund_skipped_by_hand,
    "q2o-cancel-answered-during-retries": _cancel_answered_during_retries,
    "q2o-credit-held-then-released": _credit_held_then_released,
    "q2o-credit-given-back-on-cancel": _credit_given_back_on_cancel,
    "q2o-cancel-wakes-backorder": _cancel_wakes_backorder,
    "q2o-long-backorder": _long_backorder,
    "q2o-charge-retried-in-view": _charge_retried_in_view,
    "q2o-skipped-stock-commit": _skipped_stock_commit,
}


if __name__ == "__main__":
    asyncio.run(record(sys.argv[1:]))
