"""QuoteToOrder when outside events arrive while the process is busy elsewhere.

Carrier events, cancels, skips, restocks and clock advances can land while a step runs or
waits for an operator; none may be lost, applied to the wrong thing or strand the order.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError

from api import process
from settings import Settings
from tests.factories import catalog, customer
from tests.workflow.conftest import SETUP, START, WIDGETS, Harness, card_customer
from workflows.contracts.common import ClockAdvance, ClockRef, ClockStatus, SkipRequest
from workflows.contracts.quote_to_order import (
    CancelRequest,
    Order,
    QuoteToOrderResult,
    ShipmentEventUpdate,
    initial_order,
)


def _event(shipment: str, event: str) -> ShipmentEventUpdate:
    return ShipmentEventUpdate(shipment_id=shipment, event=event)


async def test_carrier_events_that_arrive_before_fulfilment_are_all_acted_on(h: Harness) -> None:
    """Shipped and delivered both reported while the services charge waits for an
    operator: once it is retried, the goods are still committed, invoiced and charged."""
    cid = await card_customer(h)
    h.set_fault("payments", "down")
    handle = await h.start(await h.input(cid, SETUP + WIDGETS, quote=False, payment="card_on_file"))
    await h.env.sleep(timedelta(minutes=2))
    order = await h.until(handle, "order", Order, lambda o: o.status == "needs_attention")
    shipment = order.shipments[0].id
    await handle.execute_update("shipment_event", _event(shipment, "shipped"))
    await handle.execute_update("shipment_event", _event(shipment, "delivered"))
    h.set_fault("payments", "ok")
    await h.update_accepted(handle, "retry")
    result = (await handle.result()).order
    assert result is not None and result.status == "completed"
    goods = result.shipments[0]
    assert goods.status == "delivered" and goods.invoice_id is not None
    assert len(result.invoice_ids) == 2 and goods.invoice_id == result.invoice_ids[1]
    assert h.erp.get_invoice(goods.invoice_id).status == "paid"
    stock = h.erp.inventory("WIDGET-1")
    assert (stock.on_hand, stock.reserved) == (7, 0)


async def test_a_carrier_event_is_refused_while_the_order_is_being_cancelled(h: Harness) -> None:
    cid = await card_customer(h)
    handle = await h.start(await h.input(cid, WIDGETS, quote=False, payment="invoice"))
    order = await h.until(handle, "order", Order, lambda o: o.status == "fulfilling")
    h.set_fault("erp", "down")  # the compensation's first step needs an operator
    await h.update_accepted(handle, "cancel", CancelRequest(reason="duplicate"))
    await h.env.sleep(timedelta(minutes=2))
    await h.until(handle, "order", Order, lambda o: o.failed_step is not None)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("shipment_event", _event(order.shipments[0].id, "shipped"))
    assert "being cancelled" in str(refused.value.cause)
    h.set_fault("erp", "ok")
    await h.update_accepted(handle, "retry")
    result = (await handle.result()).order
    assert result is not None and result.status == "cancelled"
    assert result.shipments[0].status == "cancelled" and result.invoice_ids == []
    assert h.erp.inventory("WIDGET-1").reserved == 0


async def test_a_skipped_shipment_invoice_leaves_the_shipment_without_one(h: Harness) -> None:
    cid = await card_customer(h)
    handle = await h.start(await h.input(cid, SETUP + WIDGETS, quote=False, payment="invoice"))
    order = await h.until(handle, "order", Order, lambda o: o.status == "fulfilling")
    services_invoice = order.invoice_ids[0]
    shipment = order.shipments[0].id
    h.set_fault("erp", "down")
    await handle.execute_update("shipment_event", _event(shipment, "shipped"))
    await h.env.sleep(timedelta(minutes=2))
    await h.until(handle, "order", Order, lambda o: o.failed_step is not None)
    await handle.execute_update("skip", SkipRequest(result={}))  # commit_stock, done by hand
    # The skipped commit's reservation is released next: the ERP is still down, so that is
    # skipped too (given back by hand).
    await h.env.sleep(timedelta(minutes=2))
    await h.until(
        handle,
        "order",
        Order,
        lambda o: o.failed_step is not None and o.failed_step.name == "release_stock",
    )
    await handle.execute_update("skip", SkipRequest(result={}))
    await h.env.sleep(timedelta(minutes=2))
    await h.until(
        handle,
        "order",
        Order,
        lambda o: o.failed_step is not None and o.failed_step.name.startswith("issue_invoice"),
    )
    await handle.execute_update("skip", SkipRequest(result={}))  # invoiced by hand
    h.set_fault("erp", "ok")
    await handle.execute_update("shipment_event", _event(shipment, "delivered"))
    result = (await handle.result()).order
    assert result is not None and result.status == "completed"
    assert result.invoice_ids == [services_invoice]
    assert result.shipments[0].invoice_id is None  # not the services invoice


async def test_stock_arriving_while_the_backorder_is_registered_is_not_missed(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Restocked between the refused reservation and the backorder's registration: no
    signal reaches the order (it was not registered yet), so it looks again itself."""
    cid = await card_customer(h)
    register = h.erp.add_backorder

    def restocked_first(process_id: str, skus: list[str]) -> None:
        h.erp.adjust_inventory("WIDGET-1", 10, "delivery")
        assert h.erp.take_backorders("WIDGET-1") == []  # nobody to wake
        register(process_id, skus)

    monkeypatch.setattr(h.erp, "add_backorder", restocked_first)
    many = [{"sku": "WIDGET-1", "quantity": 15}]
    handle = await h.start(await h.input(cid, many, quote=False, payment="invoice"))
    order = await h.until(handle, "order", Order, lambda o: o.status == "fulfilling")
    assert [s.name for s in order.steps if s.name == "reserve_stock"] == ["reserve_stock"] * 2
    assert h.erp.inventory("WIDGET-1").reserved == 15


async def test_a_process_waiting_for_an_operator_is_settled_on_its_test_clock(
    h: Harness,
) -> None:
    catalog(h.erp)
    clk = h.erp.create_clock(START)
    cid = customer(h.erp, clock_id=clk.id).id
    clock = ClockRef(clock_id=clk.id, frozen_time=START)
    h.set_fault("erp", "down")
    handle = await h.start(await h.input(cid, SETUP, quote=False, payment="invoice", clock=clock))
    await h.env.sleep(timedelta(minutes=2))
    await h.until(handle, "order", Order, lambda o: o.status == "needs_attention")
    later = START + timedelta(days=1)
    await handle.signal("advance_clock", ClockAdvance(frozen_time=later))
    status = await h.until(
        handle, "clock_status", ClockStatus, lambda s: s.settled_time is not None
    )
    assert status.settled_time == later == status.now
    h.set_fault("erp", "ok")
    await h.update_accepted(handle, "retry")
    result = (await handle.result()).order
    assert result is not None and result.status == "completed"


async def test_a_clock_advanced_while_the_api_starts_a_process_reaches_it(h: Harness) -> None:
    """The API reads the clock's time, the clock is advanced (reaching every process that
    exists), then the process starts: it is sent the time it missed."""
    catalog(h.erp)
    clk = h.erp.create_clock(START)
    cid = customer(h.erp, clock_id=clk.id).id
    inp = await h.input(
        cid,
        SETUP,
        quote=False,
        payment="invoice",
        clock=ClockRef(clock_id=clk.id, frozen_time=START),
    )
    later = START + timedelta(days=3)
    h.erp.advance_clock(clk.id, later)
    settings = Settings(task_queue=h.task_queue)
    await process.start(
        h.env.client, h.erp, settings, inp, initial_order(inp, "invoice", inp.created_at)
    )
    handle = h.env.client.get_workflow_handle(inp.process_id, result_type=QuoteToOrderResult)
    status = await h.until(handle, "clock_status", ClockStatus, lambda s: s.now == later)
    assert status.clock_id == clk.id
    result = (await handle.result()).order
    assert result is not None and result.status == "completed"
