"""QuoteToOrder on the time-skipping server: every branch of the process, exact values."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from domain.errors import NotFound
from systems.records import PriceItem
from tests.factories import CARD_DECLINED, CARD_TIMEOUT, catalog, customer
from tests.workflow.conftest import SETUP, START, WIDGETS, Harness, card_customer
from workflows.contracts.common import AbortRequest, ClockAdvance, ClockStatus, SkipRequest
from workflows.contracts.quote_to_order import (
    AcceptRequest,
    CancelRequest,
    NoteRequest,
    Order,
    Quote,
    ShipmentEventUpdate,
)


def _conflict(err: WorkflowUpdateFailedError) -> str:
    assert isinstance(err.cause, ApplicationError)
    return err.cause.type or ""


async def test_approved_quote_accepted_with_card_completes_and_is_paid(h: Harness) -> None:
    cid = await card_customer(h)
    handle = await h.start(await h.input(cid, SETUP, discount="0.25"))
    quote = await h.quote(handle)
    assert quote.status == "pending_approval" and quote.requires_approval
    assert (quote.subtotal, quote.discount, quote.tax, quote.total) == (
        Decimal("150.00"),
        Decimal("37.50"),
        Decimal("21.38"),  # (150.00 - 37.50) x 0.19 = 21.375 -> half-up
        Decimal("133.88"),
    )
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await handle.execute_update("accept", AcceptRequest(payment="card_on_file"))
    assert _conflict(err.value) == "conflict"
    approved = await handle.execute_update("approve", NoteRequest(note="ok"), result_type=Quote)
    assert approved.status == "open"
    accepted = await handle.execute_update(
        "accept", AcceptRequest(payment="card_on_file"), result_type=Quote
    )
    assert accepted.status == "accepted" and accepted.order_id is not None
    result = await handle.result()
    assert result.quote is not None and result.quote.status == "ordered"
    refs = {"quote_id": quote.id, "order_id": accepted.order_id}
    assert (await h.view(handle)).refs == refs
    order = result.order
    assert order is not None and order.status == "completed"
    assert [s.name for s in order.steps] == [
        "check_credit",
        "create_sales_order",
        "email:order_confirmation",
        "issue_invoice:services",
        f"charge_invoice:{order.invoice_ids[0]}",
    ]
    assert all(s.status == "done" and s.attempts == 1 for s in order.steps)
    invoice = h.erp.get_invoice(order.invoice_ids[0])
    assert (invoice.status, invoice.total, invoice.amount_due) == (
        "paid",
        Decimal("133.88"),
        Decimal("0"),
    )
    # Numbered in the year of its issue date, by the process's clock: the time-skipping
    # server's calendar moves on with every test that waits for a result.
    assert re.fullmatch(rf"INV-{invoice.issue_date.year}-\d{{6}}", invoice.number)
    assert len(order.service_orders) == 1 and order.shipments == []
    assert h.erp.get_document("order", order.id)["status"] == "completed"
    assert h.notifier.subjects() == [f"Order {order.id} confirmed"]


async def test_a_starter_that_wrote_the_first_read_model_is_not_overwritten_by_it(
    h: Harness,
) -> None:
    cid = await card_customer(h)
    for first_document_saved in (False, True):
        inp = await h.input(cid, SETUP, discount="0.25")
        handle = await h.start(
            inp.model_copy(update={"first_document_saved": first_document_saved})
        )
        assert (await h.quote(handle)).status == "pending_approval"
        if first_document_saved:
            with pytest.raises(NotFound):  # the starter's version is the process's first
                h.erp.get_document("quote", inp.quote_id or "")
        else:  # a plain start: the process writes its first version itself
            assert h.erp.get_document("quote", inp.quote_id or "")["status"] == "pending_approval"
        await handle.execute_update("approve", NoteRequest(note="ok"))
        await handle.execute_update("accept", AcceptRequest(payment="card_on_file"))
        result = await handle.result()
        assert result.order is not None and result.order.status == "completed"
        assert h.erp.get_document("quote", inp.quote_id or "")["status"] == "ordered"
        assert h.erp.get_document("order", inp.order_id)["status"] == "completed"


async def test_rejected_and_declined_quotes_end_without_an_order(h: Harness) -> None:
    cid = await card_customer(h)
    rejected = await h.start(await h.input(cid, SETUP, discount="0.50"))
    await rejected.execute_update("reject", NoteRequest(note="too much"))
    result = await rejected.result()
    assert result.quote is not None and result.quote.status == "rejected" and result.order is None
    declined = await h.start(await h.input(cid, SETUP))
    await declined.execute_update("decline", {"reason": "went elsewhere"})
    result = await declined.result()
    assert result.quote is not None and result.quote.status == "declined"
    assert result.quote.note == "went elsewhere"


async def test_quote_expires_when_validity_ends(h: Harness) -> None:
    cid = await card_customer(h)
    handle = await h.start(await h.input(cid, SETUP, valid_days=7))
    await h.env.sleep(timedelta(days=6))
    assert (await h.quote(handle)).status == "open"
    await h.env.sleep(timedelta(days=2))
    result = await handle.result()
    assert result.quote is not None and result.quote.status == "expired"
    assert h.erp.get_document("quote", result.quote.id)["status"] == "expired"


async def test_quote_on_a_test_clock_expires_by_the_clock_not_the_wall(h: Harness) -> None:
    from workflows.contracts.common import ClockRef

    cid = await card_customer(h)
    clock = ClockRef(clock_id="clk_test", frozen_time=START)
    handle = await h.start(await h.input(cid, SETUP, valid_days=30, clock=clock))
    await h.env.sleep(timedelta(days=60))  # the wall clock moves; the test clock does not
    assert (await h.quote(handle)).status == "open"
    await handle.signal("advance_clock", ClockAdvance(frozen_time=START + timedelta(days=29)))
    status = await h.until(
        handle,
        "clock_status",
        ClockStatus,
        lambda s: s.settled_time == START + timedelta(days=29),
    )
    assert status.now == START + timedelta(days=29)
    assert (await h.quote(handle)).status == "open"
    await handle.signal("advance_clock", ClockAdvance(frozen_time=START + timedelta(days=31)))
    result = await handle.result()
    assert result.quote is not None and result.quote.status == "expired"


async def test_credit_hold_waits_for_release_then_completes(h: Harness) -> None:
    cid = await card_customer(h, credit_limit="100.00")
    handle = await h.start(await h.input(cid, SETUP, quote=False, payment="invoice"))
    held = await h.until(handle, "order", Order, lambda o: o.status == "credit_hold")
    assert held.hold_reason is not None and "exceeds credit limit 100.00" in held.hold_reason
    view = await h.view(handle)  # what an operator's console links to
    assert (view.status, view.refs) == ("credit_hold", {"order_id": held.id})
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await handle.execute_update("retry")
    assert _conflict(err.value) == "conflict"
    released = await handle.execute_update("release", NoteRequest(note="vip"), result_type=Order)
    assert released.status != "credit_hold"
    result = await handle.result()
    assert result.order is not None and result.order.status == "completed"
    invoice = h.erp.get_invoice(result.order.invoice_ids[0])
    assert invoice.status == "open" and invoice.due_date == invoice.issue_date + timedelta(days=30)


async def test_an_order_placed_with_its_credit_position_is_checked_on_it_alone(
    h: Harness,
) -> None:
    """Orders the API started with the credit position read at placement (before the
    process committed credit) decide on it without reading the ERP (which is down here),
    so the first step that needs the ERP fails."""
    catalog(h.erp)
    cid = customer(h.erp, terms=14).id
    inp = await h.input(cid, SETUP, quote=False, payment="invoice", credit=True)
    h.set_fault("erp", "down")
    await h.env.sleep(timedelta(hours=1))  # the worker runs it later than it was placed
    handle = await h.start(inp)
    await h.env.sleep(timedelta(minutes=2))
    order = await h.until(handle, "order", Order, lambda o: o.status == "needs_attention")
    assert order.failed_step is not None and order.failed_step.name == "create_sales_order"
    check = order.steps[0]
    assert (check.name, check.status, check.attempts) == ("check_credit", "done", 1)
    assert check.started_at == check.finished_at == inp.created_at  # checked at placement
    h.set_fault("erp", "ok")
    await h.update_accepted(handle, "retry")
    result = await handle.result()
    assert result.order is not None and result.order.status == "completed"
    invoice = h.erp.get_invoice(result.order.invoice_ids[0])
    assert invoice.due_date == invoice.issue_date + timedelta(days=14)  # the snapshot's terms


async def test_an_order_over_the_limit_at_placement_is_held(h: Harness) -> None:
    """(Started with its credit position read at placement, as before commitments.)"""
    cid = await card_customer(h, credit_limit="100.00")
    h.set_fault("erp", "down")
    inp = await h.input(cid, SETUP, quote=False, payment="invoice", credit=True)
    handle = await h.start(inp)
    held = await h.until(handle, "order", Order, lambda o: o.status == "credit_hold")
    assert held.hold_reason is not None and "exceeds credit limit 100.00" in held.hold_reason
    await h.update_accepted(handle, "cancel", CancelRequest(reason="over limit"))
    assert (await handle.result()).order.status == "cancelled"


async def test_an_uninvoiced_order_holds_credit_until_invoiced_or_cancelled(h: Harness) -> None:
    """Exposure is open AR plus open orders: goods ordered but not yet shipped (so not
    invoiced) count against the limit, as their invoice will."""
    cid = await card_customer(h, credit_limit="150.00")
    today = START.date()

    async def place() -> Any:
        handle = await h.start(await h.input(cid, WIDGETS, quote=False, payment="invoice"))
        await h.until(handle, "order", Order, lambda o: o.status in ("fulfilling", "credit_hold"))
        return handle

    def account() -> tuple[Decimal, Decimal, Decimal]:
        a = h.erp.credit_view(cid, today).account
        return a.open_ar, a.open_orders, a.credit_available

    first, second = await place(), await place()  # 71.36 each: 142.72 of 150.00
    assert account() == (Decimal(0), Decimal("142.72"), Decimal("7.28"))
    third = await place()
    held = await h.order(third)
    assert held.status == "credit_hold"
    assert held.hold_reason == (
        "open AR 0.00 + open orders 142.72 + order 71.36 exceeds credit limit 150.00 by 64.08"
    )
    # Shipping invoices the first order: its value moves from open orders to open AR.
    shipment = (await h.order(first)).shipments[0].id
    await _event(first, shipment, "shipped")
    await h.until(first, "order", Order, lambda o: len(o.invoice_ids) == 1)
    assert account() == (Decimal("71.36"), Decimal("71.36"), Decimal("7.28"))
    # A cancel gives the second order's credit back. (Results are awaited only once no
    # order waits: awaiting one lets the server skip time past the others' timeouts.)
    await h.update_accepted(second, "cancel", CancelRequest(reason="duplicate"))
    cancelled = await h.until(second, "order", Order, lambda o: o.status == "cancelled")
    steps = {s.name: s.status for s in cancelled.steps}
    assert (steps["check_credit"], steps["release_credit"]) == ("compensated", "done")
    assert account() == (Decimal("71.36"), Decimal(0), Decimal("78.64"))
    # An operator's release commits the held order whatever the position.
    await _release(third)
    released = await h.until(third, "order", Order, lambda o: o.status == "fulfilling")
    assert [s.name for s in released.steps][:2] == ["check_credit", "commit_credit"]
    assert account() == (Decimal("71.36"), Decimal("71.36"), Decimal("7.28"))
    await h.update_accepted(third, "cancel", CancelRequest(reason="over limit after all"))
    cancelled = await h.until(third, "order", Order, lambda o: o.status == "cancelled")
    steps = {s.name: s.status for s in cancelled.steps}
    assert (steps["commit_credit"], steps["release_credit"]) == ("compensated", "done")
    # (Accepted only: the server loses the outcome of an Update that ends the workflow.)
    await h.update_accepted(
        first, "shipment_event", ShipmentEventUpdate(shipment_id=shipment, event="delivered")
    )
    ended = [(await x.result()).order.status for x in (first, second, third)]
    assert ended == ["completed", "cancelled", "cancelled"]
    assert account() == (Decimal("71.36"), Decimal(0), Decimal("78.64"))


async def _event(handle: Any, shipment_id: str, event: str) -> None:
    await handle.execute_update(
        "shipment_event",
        ShipmentEventUpdate(shipment_id=shipment_id, event=event),
    )


async def _release(handle: Any) -> None:
    await handle.execute_update("release", NoteRequest(note="known customer"), result_type=Order)


async def test_orders_checked_at_once_never_share_the_last_credit(h: Harness) -> None:
    """Five 178.50 service orders placed together against a 400.00 limit: two fit."""
    cid = await card_customer(h, credit_limit="400.00")
    inputs = [await h.input(cid, SETUP, quote=False, payment="invoice") for _ in range(5)]
    handles = await asyncio.gather(*(h.start(inp) for inp in inputs))
    orders = [
        await h.until(x, "order", Order, lambda o: o.status in ("completed", "credit_hold"))
        for x in handles
    ]
    assert sorted(o.status for o in orders) == ["completed"] * 2 + ["credit_hold"] * 3
    a = h.erp.credit_view(cid, START.date()).account
    assert (a.open_ar, a.open_orders) == (Decimal("357.00"), Decimal(0))
    # Every held order is cancelled before any result is awaited: awaiting one lets the
    # server skip time, and the others would wait out their execution timeout.
    for x, o in zip(handles, orders, strict=True):
        if o.status == "credit_hold":
            await h.update_accepted(x, "cancel", CancelRequest(reason="over limit"))
    ended = [(await x.result()).order.status for x in handles]
    assert sorted(ended) == ["cancelled"] * 3 + ["completed"] * 2


async def test_an_aborted_credit_check_gives_back_what_a_lost_attempt_committed(
    h: Harness,
) -> None:
    """An attempt committed and lost its answer; the ones after failed and an operator
    aborts: the compensation still releases the commitment."""
    cid = await card_customer(h)
    inp = await h.input(cid, SETUP, quote=False, payment="invoice")
    lost = h.erp.commit_credit(
        f"{inp.process_id}:credit", cid, inp.order_id, inp.totals.total, "EUR", START.date()
    )
    assert lost.committed
    h.set_fault("erp", "down")
    handle = await h.start(inp)
    await h.env.sleep(timedelta(minutes=2))
    await h.until(handle, "order", Order, lambda o: o.status == "needs_attention")
    h.set_fault("erp", "ok")
    await h.update_accepted(handle, "abort", AbortRequest(reason="checked by hand: no"))
    result = (await handle.result()).order
    assert result is not None and result.status == "cancelled"
    assert [(s.name, s.status) for s in result.steps][-1] == ("release_credit", "done")
    assert h.erp.credit_view(cid, START.date()).account.open_orders == Decimal(0)


async def test_a_skipped_credit_check_commits_nothing_and_takes_only_the_terms(
    h: Harness,
) -> None:
    cid = await card_customer(h)
    h.set_fault("erp", "down")
    handle = await h.start(await h.input(cid, SETUP, quote=False, payment="invoice"))
    await h.env.sleep(timedelta(minutes=2))
    await h.until(handle, "order", Order, lambda o: o.status == "needs_attention")
    h.set_fault("erp", "ok")
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await handle.execute_update("skip", SkipRequest(result={"committed": False}))
    assert _conflict(err.value) == "invalid_input"
    await h.update_accepted(handle, "skip", SkipRequest(result={"payment_terms_days": 7}))
    result = (await handle.result()).order
    assert result is not None and result.status == "completed"
    assert [(s.name, s.status) for s in result.steps][:2] == [
        ("check_credit", "skipped"),
        ("create_sales_order", "done"),
    ]
    invoice = h.erp.get_invoice(result.invoice_ids[0])
    assert invoice.due_date == invoice.issue_date + timedelta(days=7)
    assert h.erp.credit_view(cid, START.date()).account.open_orders == Decimal(0)


async def test_a_free_order_paid_by_card_completes_without_a_charge(h: Harness) -> None:
    cid = await card_customer(h)
    h.erp.set_prices(cid, [PriceItem(sku="SETUP", unit_price=Decimal("0.00"))])
    handle = await h.start(await h.input(cid, SETUP, quote=False, payment="card_on_file"))
    result = await handle.result()
    assert result.order is not None and result.order.status == "completed"
    invoice = h.erp.get_invoice(result.order.invoice_ids[0])
    assert (invoice.total, invoice.status) == (Decimal("0.00"), "paid")
    assert h.erp.payments_for_invoice(invoice.id) == []
    assert [s.status for s in result.order.steps if s.name.startswith("charge")] == ["done"]


async def test_credit_hold_cancelled_compensates_nothing_and_ends(h: Harness) -> None:
    cid = await card_customer(h, credit_limit="0.00")
    handle = await h.start(await h.input(cid, WIDGETS, quote=False, payment="invoice"))
    await h.until(handle, "order", Order, lambda o: o.status == "credit_hold")
    await h.update_accepted(handle, "cancel", CancelRequest(reason="customer changed mind"))
    cancelled = (await handle.result()).order
    assert cancelled.status == "cancelled" and cancelled.cancel_reason == "customer changed mind"
    assert h.erp.inventory("WIDGET-1").reserved == 0
    assert [s.name for s in cancelled.steps] == ["check_credit"]


async def test_backorder_waits_for_stock_and_continues_when_it_arrives(h: Harness) -> None:
    cid = await card_customer(h)
    handle = await h.start(
        await h.input(cid, [{"sku": "WIDGET-1", "quantity": 15}], quote=False, payment="invoice")
    )
    await h.until(handle, "order", Order, lambda o: o.status == "backordered")
    assert h.erp.inventory("WIDGET-1").reserved == 0
    h.erp.adjust_inventory("WIDGET-1", 10, "delivery")
    assert h.erp.take_backorders("WIDGET-1") == [handle.id]
    await handle.signal("stock_changed")
    order = await h.until(handle, "order", Order, lambda o: o.status == "fulfilling")
    assert h.erp.inventory("WIDGET-1").reserved == 15
    assert [s.name for s in order.steps][:4] == [
        "check_credit",
        "reserve_stock",
        "add_backorder",
        "reserve_stock",
    ]
    assert order.steps[1].status == "failed" and "out_of_stock" in (order.steps[1].error or "")


async def test_a_cancel_that_gives_stock_back_wakes_the_orders_waiting_for_it(
    h: Harness,
) -> None:
    cid = await card_customer(h)
    eight = [{"sku": "WIDGET-1", "quantity": 8}]
    first = await h.start(await h.input(cid, eight, quote=False, payment="invoice"))
    await h.until(first, "order", Order, lambda o: o.status == "fulfilling")
    waiting = await h.start(await h.input(cid, eight, quote=False, payment="invoice"))
    await h.until(waiting, "order", Order, lambda o: o.status == "backordered")
    await h.update_accepted(first, "cancel", CancelRequest(reason="customer changed mind"))
    # Told by the cancel, not by an adjustment or its hourly re-check (no time passes here).
    order = await h.until(waiting, "order", Order, lambda o: o.status == "fulfilling")
    assert h.erp.inventory("WIDGET-1").reserved == 8
    assert [s.name for s in order.steps][1:4] == ["reserve_stock", "add_backorder", "reserve_stock"]
    await h.update_accepted(waiting, "cancel", CancelRequest(reason="done testing"))
    ended = [(await x.result()).order.status for x in (first, waiting)]
    assert ended == ["cancelled", "cancelled"]
    assert h.erp.inventory("WIDGET-1").reserved == 0


async def test_backorder_rechecks_stock_even_without_a_signal(h: Harness) -> None:
    cid = await card_customer(h)
    handle = await h.start(
        await h.input(cid, [{"sku": "WIDGET-1", "quantity": 12}], quote=False, payment="invoice")
    )
    await h.until(handle, "order", Order, lambda o: o.status == "backordered")
    h.erp.adjust_inventory("WIDGET-1", 5, "found on a shelf")
    await h.env.sleep(timedelta(hours=1, minutes=1))
    await h.until(handle, "order", Order, lambda o: o.status == "fulfilling")


async def test_a_long_backorder_keeps_its_timeline_and_history_small(h: Harness) -> None:
    """Two days without stock: the re-checks continue one timeline entry, and back off
    from hourly to every 6 h (1+2+4+6+6+6+6+6+6 h), so the history grows slowly."""
    cid = await card_customer(h)
    handle = await h.start(
        await h.input(cid, [{"sku": "WIDGET-1", "quantity": 12}], quote=False, payment="invoice")
    )
    await h.until(handle, "order", Order, lambda o: o.status == "backordered")
    await h.env.sleep(timedelta(hours=48))
    order = await h.order(handle)
    assert order.status == "backordered"
    assert [(s.name, s.status) for s in order.steps] == [
        ("check_credit", "done"),
        ("reserve_stock", "failed"),
        ("add_backorder", "done"),
        ("reserve_stock", "failed"),
    ]
    # The check before the first wait, then two per wake-up: one as it wakes, one after it
    # registers again (stock may come between the two).
    assert order.steps[-1].attempts == 1 + 2 * 9
    fired = [
        e async for e in handle.fetch_history_events() if e.HasField("timer_fired_event_attributes")
    ]
    assert len(fired) == 9  # hourly, it would be 48
    h.erp.adjust_inventory("WIDGET-1", 5, "delivery")
    assert h.erp.take_backorders("WIDGET-1") == [handle.id]
    await handle.signal("stock_changed")
    order = await h.until(handle, "order", Order, lambda o: o.status == "fulfilling")
    assert [(s.name, s.status) for s in order.steps][3:4] == [("reserve_stock", "done")]
    await h.update_accepted(handle, "cancel", CancelRequest(reason="done waiting"))
    assert (await handle.result()).order.status == "cancelled"


async def test_physical_order_invoices_and_charges_on_shipment_then_completes(h: Harness) -> None:
    cid = await card_customer(h)
    handle = await h.start(await h.input(cid, WIDGETS, quote=False, payment="card_on_file"))
    order = await h.until(handle, "order", Order, lambda o: o.status == "fulfilling")
    assert order.invoice_ids == [] and len(order.shipments) == 1
    shipment = order.shipments[0]
    assert [(x.sku, x.quantity) for x in shipment.lines] == [("WIDGET-1", 3)]
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(
            "shipment_event", ShipmentEventUpdate(shipment_id=shipment.id, event="delivered")
        )
    await handle.execute_update(
        "shipment_event",
        ShipmentEventUpdate(shipment_id=shipment.id, event="shipped", tracking_number="1Z999"),
    )
    shipped = await h.until(
        handle,
        "order",
        Order,
        lambda o: o.steps[-1].name.startswith("charge_invoice:") and o.steps[-1].status == "done",
    )
    inv = h.erp.get_invoice(shipped.invoice_ids[0])
    # 3 x 19.99 = 59.97; tax 59.97 x 0.19 = 11.3943 -> 11.39
    assert (inv.subtotal, inv.tax, inv.total, inv.status) == (
        Decimal("59.97"),
        Decimal("11.39"),
        Decimal("71.36"),
        "paid",
    )
    stock = h.erp.inventory("WIDGET-1")
    assert (stock.on_hand, stock.reserved) == (7, 0)
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update("cancel", CancelRequest(reason="too late"))
    await handle.execute_update(
        "shipment_event", ShipmentEventUpdate(shipment_id=shipment.id, event="delivered")
    )
    result = await handle.result()
    assert result.order is not None and result.order.status == "completed"
    assert result.order.shipments[0].tracking_number == "1Z999"
    assert result.order.shipments[0].invoice_id == inv.id


async def test_cancel_compensates_stock_invoice_refund_and_erp_order(h: Harness) -> None:
    cid = await card_customer(h)
    handle = await h.start(await h.input(cid, SETUP + WIDGETS, quote=False, payment="card_on_file"))
    order = await h.until(handle, "order", Order, lambda o: o.status == "fulfilling")
    paid = h.erp.get_invoice(order.invoice_ids[0])
    assert paid.status == "paid" and h.erp.inventory("WIDGET-1").reserved == 3
    await h.update_accepted(handle, "cancel", CancelRequest(reason="duplicate order"))
    cancelled = (await handle.result()).order
    assert cancelled.status == "cancelled"
    after = h.erp.get_invoice(paid.id)
    assert after.amount_credited == paid.total and after.amount_due == Decimal("0")
    payments = h.erp.payments_for_invoice(paid.id)
    assert [p.refunded for p in payments] == [paid.total]
    assert h.erp.inventory("WIDGET-1").reserved == 0
    by_name = {s.name: s.status for s in cancelled.steps}
    assert by_name["reserve_stock"] == "compensated"
    assert by_name["create_sales_order"] == "compensated"
    assert by_name["issue_invoice:services"] == "compensated"
    assert by_name[f"refund_invoice:{paid.id}"] == "done"
    assert by_name["cancel_sales_order"] == "done"
    assert cancelled.service_orders[0].status == "cancelled"
    balance = h.erp.trial_balance("EUR")
    assert sum(balance.values(), Decimal(0)) == Decimal(0)
    # The refund also gives back a charge made under the invoice's charge key that no
    # payment holds (one whose answer a timeout lost: tests/unit/test_payment_activities.py).
    refunds = [
        json.loads(e.activity_task_scheduled_event_attributes.input.payloads[0].data)
        async for e in handle.fetch_history_events()
        if e.activity_task_scheduled_event_attributes.activity_type.name
        == "payments.refund_invoice"
    ]
    assert [r["charge_key"] for r in refunds] == [f"{handle.id}:charge:{paid.id}"]


async def test_a_cancel_answers_while_its_compensation_still_retries(h: Harness) -> None:
    """API.md: a POST that moves a process answers at once. A compensation retrying against
    a system that is down does not hold the answer: it shows the order as it is then."""
    cid = await card_customer(h)
    handle = await h.start(await h.input(cid, SETUP + WIDGETS, quote=False, payment="invoice"))
    await h.until(handle, "order", Order, lambda o: o.status == "fulfilling")
    h.set_fault("erp", "down")
    answer = await handle.execute_update(
        "cancel", CancelRequest(reason="customer changed plans"), result_type=Order
    )
    assert answer.status == "fulfilling"  # compensation under way, nothing cancelled yet
    assert answer.steps[-1].status in ("running", "failed")
    assert answer.steps[-1].name.startswith(("release_stock", "reverse_invoice", "cancel_"))
    h.set_fault("erp", "ok")
    cancelled = (await handle.result()).order
    assert cancelled is not None and cancelled.status == "cancelled"
    assert h.erp.inventory("WIDGET-1").reserved == 0


async def test_money_paid_by_transfer_asks_an_operator_while_compensating(h: Harness) -> None:
    cid = await card_customer(h)
    handle = await h.start(await h.input(cid, SETUP + WIDGETS, quote=False, payment="invoice"))
    order = await h.until(handle, "order", Order, lambda o: o.status == "fulfilling")
    invoice = h.erp.get_invoice(order.invoice_ids[0])
    h.erp.record_payment("bank:wire-7", invoice.id, Decimal("10.00"), "bank_transfer", "wire-7")
    await h.update_accepted(handle, "cancel", CancelRequest(reason="customer changed plans"))
    waiting = await h.until(handle, "order", Order, lambda o: o.failed_step is not None)
    assert waiting.status == "needs_attention"
    assert waiting.failed_step is not None
    assert waiting.failed_step.name == f"refund_invoice:{invoice.id}"
    assert "manual_refund_required" in waiting.failed_step.error
    assert "10.00 EUR by bank_transfer (wire-7)" in waiting.failed_step.error
    with pytest.raises(WorkflowUpdateFailedError):  # compensation is under way: no abort
        await handle.execute_update("abort", AbortRequest(reason="give up"))
    # What went back by hand is money: no less than nothing, to the cent.
    for bad, field in (("-5.00", "refunded"), ("10.001", "refunded")):
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await handle.execute_update("skip", SkipRequest(result={field: bad}))
        assert _conflict(err.value) == "invalid_input"
        assert isinstance(err.value.cause, ApplicationError)
        [said] = err.value.cause.details
        assert said["errors"][0]["loc"] == ["body", "result", field], bad
    with pytest.raises(WorkflowUpdateFailedError):  # the step's refund ids are its own
        await handle.execute_update("skip", SkipRequest(result={"refund_ids": ["re_x"]}))
    # The operator refunds the transfer by hand, then skips the step.
    await h.update_accepted(handle, "skip", SkipRequest(result={"refunded": "10.00"}))
    result = (await handle.result()).order
    assert result is not None and result.status == "cancelled"
    steps = {s.name: s.status for s in result.steps}
    assert steps[f"refund_invoice:{invoice.id}"] == "skipped"
    # What the operator refunded by hand is recorded: the ledger no longer holds the cash.
    assert steps[f"record_refund_by_hand:{invoice.id}"] == "done"
    assert steps["cancel_sales_order"] == "done"
    assert h.erp.inventory("WIDGET-1").reserved == 0
    [wire] = h.erp.payments_for_invoice(invoice.id)
    assert wire.refunded == Decimal("10.00")
    balance = h.erp.trial_balance("EUR")
    assert (balance.get("cash", 0), balance.get("accounts_receivable", 0)) == (0, 0)


async def test_abort_is_refused_once_goods_have_shipped(h: Harness) -> None:
    """Shipped goods cannot be compensated: their invoice stands and their stock has left."""
    cid = await card_customer(h)
    handle = await h.start(await h.input(cid, WIDGETS, quote=False, payment="card_on_file"))
    order = await h.until(handle, "order", Order, lambda o: o.status == "fulfilling")
    shipment = order.shipments[0].id
    with pytest.raises(WorkflowUpdateFailedError) as unknown:
        await handle.execute_update(
            "shipment_event", ShipmentEventUpdate(shipment_id="shp_nope", event="shipped")
        )
    assert _conflict(unknown.value) == "not_found"  # the API answers 404
    await handle.execute_update(
        "shipment_event", ShipmentEventUpdate(shipment_id=shipment, event="shipped")
    )
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await handle.execute_update("abort", AbortRequest(reason="carrier lost contact"))
    assert _conflict(err.value) == "conflict"
    assert "goods have shipped" in str(err.value.cause)
    await handle.execute_update(
        "shipment_event", ShipmentEventUpdate(shipment_id=shipment, event="delivered")
    )
    result = (await handle.result()).order
    assert result is not None and result.status == "completed"
    invoice = h.erp.get_invoice(result.invoice_ids[0])
    assert (invoice.status, invoice.amount_credited) == ("paid", Decimal("0"))
    assert h.erp.inventory("WIDGET-1").reserved == 0


async def test_failed_step_needs_attention_then_retry_completes(h: Harness) -> None:
    cid = await card_customer(h)
    h.set_fault("erp", "down")
    handle = await h.start(await h.input(cid, SETUP, quote=False, payment="invoice"))
    await h.env.sleep(timedelta(minutes=2))
    order = await h.until(handle, "order", Order, lambda o: o.status == "needs_attention")
    assert order.failed_step is not None and order.failed_step.name == "check_credit"
    assert order.failed_step.attempts == 5
    assert "system_unavailable" in order.failed_step.error
    view = await h.view(handle)
    assert view.failed_step == order.failed_step and view.status == "needs_attention"
    h.set_fault("erp", "ok")
    await h.update_accepted(handle, "retry")
    result = await handle.result()
    assert result.order is not None and result.order.status == "completed"
    assert result.order.steps[0].attempts == 6 and result.order.failed_step is None
    assert [s.status for s in result.order.steps][:1] == ["done"]


async def test_a_step_whose_first_attempt_failed_shows_in_the_order_at_once(h: Harness) -> None:
    """The order's read model shows a step retrying, with the invoice it charges and the
    error, as soon as its first attempt fails (not only when its status next changes)."""
    cid = await card_customer(h)
    h.set_fault("payments", "down")
    inp = await h.input(cid, SETUP, quote=False, payment="card_on_file")
    handle = await h.start(inp)
    for _ in range(200):
        with contextlib.suppress(NotFound):  # not yet written
            saved = Order.model_validate(h.erp.get_document("order", inp.order_id))
            if saved.steps and saved.steps[-1].name.startswith("charge_invoice:"):
                break
        await asyncio.sleep(0.05)
    step = saved.steps[-1]
    assert (step.status, step.attempts) == ("running", 1)
    assert step.error is not None and "system_unavailable" in step.error
    assert saved.status == "confirmed" and step.name == f"charge_invoice:{saved.invoice_ids[0]}"
    h.set_fault("payments", "ok")
    result = (await handle.result()).order
    assert result is not None and result.status == "completed"
    charge = next(s for s in result.steps if s.name == step.name)
    assert charge.status == "done" and charge.attempts >= 2 and charge.error is None
    assert h.erp.get_invoice(saved.invoice_ids[0]).status == "paid"


async def test_goods_shipped_after_a_skipped_reservation_still_leave_stock(h: Harness) -> None:
    cid = await card_customer(h)
    h.set_fault("erp", "down")
    handle = await h.start(await h.input(cid, WIDGETS, quote=False, payment="invoice"))
    for step in ("check_credit", "reserve_stock"):
        await h.env.sleep(timedelta(minutes=2))
        failed = await h.until(handle, "order", Order, lambda o: o.failed_step is not None)
        assert failed.failed_step is not None and failed.failed_step.name == step
        await h.update_accepted(handle, "skip", SkipRequest(result={}))
        await h.until(handle, "order", Order, lambda o: o.failed_step is None)
    await h.env.sleep(timedelta(minutes=2))
    await h.until(handle, "order", Order, lambda o: o.failed_step is not None)
    h.set_fault("erp", "ok")
    await h.update_accepted(handle, "retry")
    order = await h.until(handle, "order", Order, lambda o: o.status == "fulfilling")
    assert h.erp.inventory("WIDGET-1").reserved == 0  # nothing was reserved
    await _event(handle, order.shipments[0].id, "shipped")
    await h.until(handle, "order", Order, lambda o: len(o.invoice_ids) == 1)
    stock = h.erp.inventory("WIDGET-1")
    assert (stock.on_hand, stock.reserved) == (7, 0)  # the shipped 3 left all the same
    await h.update_accepted(
        handle,
        "shipment_event",
        ShipmentEventUpdate(shipment_id=order.shipments[0].id, event="delivered"),
    )
    assert (await handle.result()).order.status == "completed"


async def test_a_skipped_stock_commit_gives_the_reservation_back(h: Harness) -> None:
    """Skipping the commit says the goods' stock was moved by hand: the reservation is
    released (else it would hold the units, and block the count's correction, for good)."""
    cid = await card_customer(h)
    handle = await h.start(await h.input(cid, WIDGETS, quote=False, payment="invoice"))
    order = await h.until(handle, "order", Order, lambda o: o.status == "fulfilling")
    h.set_fault("erp", "down")
    await _event(handle, order.shipments[0].id, "shipped")
    await h.env.sleep(timedelta(minutes=2))
    failed = await h.until(handle, "order", Order, lambda o: o.failed_step is not None)
    assert failed.failed_step is not None and failed.failed_step.name == "commit_stock"
    h.set_fault("erp", "ok")
    await h.update_accepted(handle, "skip", SkipRequest(result={}))
    await h.until(handle, "order", Order, lambda o: len(o.invoice_ids) == 1)
    stock = h.erp.inventory("WIDGET-1")
    assert (stock.on_hand, stock.reserved) == (10, 0)
    h.erp.adjust_inventory("WIDGET-1", -3, "shipped by hand")  # the correction is possible
    await h.update_accepted(
        handle,
        "shipment_event",
        ShipmentEventUpdate(shipment_id=order.shipments[0].id, event="delivered"),
    )
    result = (await handle.result()).order
    assert [(s.name, s.status) for s in result.steps if "stock" in s.name] == [
        ("reserve_stock", "done"),
        ("commit_stock", "skipped"),
        ("release_stock", "done"),
    ]


async def test_skip_continues_with_the_given_result(h: Harness) -> None:
    cid = await card_customer(h)
    h.set_fault("payments", "down")
    handle = await h.start(await h.input(cid, SETUP, quote=False, payment="card_on_file"))
    await h.env.sleep(timedelta(minutes=2))
    order = await h.until(handle, "order", Order, lambda o: o.status == "needs_attention")
    assert order.failed_step is not None
    assert order.failed_step.name == f"charge_invoice:{order.invoice_ids[0]}"
    # A skipped charge did not happen: its result is empty, and names no unknown field.
    for bad in ({"amount": "-5"}, {"charge_id": "manual"}, {"bogus": 1}):
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await handle.execute_update("skip", SkipRequest(result=bad))
        assert _conflict(err.value) == "invalid_input", bad
    await h.update_accepted(handle, "skip", SkipRequest(result={}))
    h.set_fault("payments", "ok")
    result = await handle.result()
    assert result.order is not None and result.order.status == "completed"
    steps = {s.name: (s.status, s.attempts) for s in result.order.steps}
    invoice_id = result.order.invoice_ids[0]
    assert steps[f"charge_invoice:{invoice_id}"][0] == "skipped"
    assert steps[f"return_charge:{invoice_id}"] == ("done", 1)  # nothing was charged
    assert h.erp.get_invoice(invoice_id).status == "open"


async def test_a_retry_is_on_the_timeline_the_moment_the_process_leaves_attention(
    h: Harness,
) -> None:
    """The read model saved as the operator acts shows the step running again, not the
    failure it answered (the next save may be a long retry away)."""
    cid = await card_customer(h)
    h.set_fault("payments", "down")
    handle = await h.start(await h.input(cid, SETUP, quote=False, payment="card_on_file"))
    await h.env.sleep(timedelta(minutes=2))
    order = await h.until(handle, "order", Order, lambda o: o.status == "needs_attention")
    name = f"charge_invoice:{order.invoice_ids[0]}"
    await h.update_accepted(handle, "retry")  # the gateway is still down: it fails again
    for _ in range(200):
        saved = Order.model_validate(h.erp.get_document("order", order.id))
        if saved.failed_step is None:
            break
        await asyncio.sleep(0.05)
    assert saved.failed_step is None and saved.status != "needs_attention"
    assert (saved.steps[-1].name, saved.steps[-1].status) == (name, "running")
    h.set_fault("payments", "ok")
    result = (await handle.result()).order
    assert result is not None and result.status == "completed"


async def test_a_skipped_invoice_step_cannot_name_an_invoice(h: Harness) -> None:
    """A skip result naming an invoice would have the card pay whatever it names (another
    customer's invoice): skipping the step means nothing was issued; a retry finds an
    invoice the step made by its key."""
    cid = await card_customer(h)
    h.set_fault("notifications", "down")  # holds the order at its confirmation e-mail
    handle = await h.start(await h.input(cid, SETUP, quote=False, payment="card_on_file"))
    await h.env.sleep(timedelta(minutes=2))
    await h.until(handle, "order", Order, lambda o: o.status == "needs_attention")
    h.set_fault("erp", "down")
    h.set_fault("notifications", "ok")
    await h.update_accepted(handle, "retry")
    await h.env.sleep(timedelta(minutes=2))
    order = await h.until(
        handle,
        "order",
        Order,
        lambda o: o.failed_step is not None and o.failed_step.name == "issue_invoice:services",
    )
    h.set_fault("erp", "ok")
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await handle.execute_update("skip", SkipRequest(result={"invoice_id": "inv_other"}))
    assert _conflict(err.value) == "invalid_input"
    assert "retry the step" in str(err.value.cause)
    await h.update_accepted(handle, "skip", SkipRequest(result={}))
    result = (await handle.result()).order
    assert result is not None and result.status == "completed"
    assert result.invoice_ids == [] and order.invoice_ids == []
    # Nothing was invoiced, so the order's credit is given back when it completes.
    assert (result.steps[-1].name, result.steps[-1].status) == ("release_credit", "done")
    assert h.erp.credit_view(cid, START.date()).account.open_orders == Decimal(0)


async def test_a_skipped_charge_gives_back_what_its_attempts_took(h: Harness) -> None:
    """The gateway holds a charge for the step's key (an attempt took the money, then the
    gateway went down and the answer was lost): skipping the step returns it, so no money
    stays at the gateway that the ERP does not record, and the invoice stays open."""
    cid = await card_customer(h)
    h.set_fault("payments", "down")
    handle = await h.start(await h.input(cid, SETUP, quote=False, payment="card_on_file"))
    await h.env.sleep(timedelta(minutes=2))
    order = await h.until(handle, "order", Order, lambda o: o.status == "needs_attention")
    invoice = h.erp.get_invoice(order.invoice_ids[0])
    key = f"{order.process_id}:charge:{invoice.id}"
    token = h.erp.charge_view(invoice.id, cid).card_token
    assert token is not None
    await h.gateway.charge(key, token, invoice.amount_due, "EUR", "taken before the outage")
    h.set_fault("payments", "ok")
    await h.update_accepted(handle, "skip", SkipRequest(result={}))
    result = await handle.result()
    assert result.order is not None and result.order.status == "completed"
    assert result.order.steps[-1].name == f"return_charge:{invoice.id}"
    assert result.order.steps[-1].status == "done"
    charge = await h.gateway.succeeded_charge(key)
    assert charge is not None and charge.refunded == charge.amount == Decimal("178.50")
    assert h.erp.get_invoice(invoice.id).status == "open"
    assert h.erp.payments_for_invoice(invoice.id) == []


async def test_a_refused_email_asks_an_operator_at_once(h: Harness) -> None:
    """A permanent SMTP refusal is not retried (it would be refused again)."""
    cid = await card_customer(h)
    h.notifier.refused.add("billing@acme.example")
    handle = await h.start(await h.input(cid, SETUP, quote=False, payment="invoice"))
    order = await h.until(handle, "order", Order, lambda o: o.status == "needs_attention")
    assert order.failed_step is not None and order.failed_step.attempts == 1
    assert order.failed_step.name == "email:order_confirmation"
    assert "message_refused" in order.failed_step.error
    await h.update_accepted(handle, "skip", SkipRequest(result={}))
    result = await handle.result()
    assert result.order is not None and result.order.status == "completed"
    assert h.notifier.calls == 1


async def test_abort_compensates_and_ends_cancelled(h: Harness) -> None:
    cid = await card_customer(h)
    h.set_fault("notifications", "down")
    handle = await h.start(await h.input(cid, WIDGETS, quote=False, payment="invoice"))
    await h.env.sleep(timedelta(minutes=2))
    order = await h.until(handle, "order", Order, lambda o: o.status == "needs_attention")
    assert order.failed_step is not None and order.failed_step.name == "email:order_confirmation"
    assert h.erp.inventory("WIDGET-1").reserved == 3
    await h.update_accepted(handle, "abort", AbortRequest(reason="erp rejected the order"))
    result = await handle.result()
    assert result.order is not None and result.order.status == "cancelled"
    assert result.order.cancel_reason == "erp rejected the order"
    assert h.erp.inventory("WIDGET-1").reserved == 0
    by_name = {s.name: s.status for s in result.order.steps}
    assert by_name["reserve_stock"] == "compensated"
    assert by_name["email:order_confirmation"] == "failed"


async def test_charge_timed_out_after_charging_is_retried_and_charged_once(h: Harness) -> None:
    cid = await card_customer(h, card=CARD_TIMEOUT)
    handle = await h.start(await h.input(cid, SETUP, quote=False, payment="card_on_file"))
    result = await handle.result()
    assert result.order is not None and result.order.status == "completed"
    inv_id = result.order.invoice_ids[0]
    charge = next(s for s in result.order.steps if s.name == f"charge_invoice:{inv_id}")
    assert (charge.status, charge.attempts) == ("done", 2)
    assert await h.gateway.charges_for_key(f"{handle.id}:charge:{inv_id}") == 1
    assert h.erp.get_invoice(inv_id).status == "paid"
    assert len(h.erp.payments_for_invoice(inv_id)) == 1


async def test_declined_card_leaves_invoice_open_and_order_completes(h: Harness) -> None:
    cid = await card_customer(h, card=CARD_DECLINED)
    handle = await h.start(await h.input(cid, SETUP, quote=False, payment="card_on_file"))
    result = await handle.result()
    assert result.order is not None and result.order.status == "completed"
    charge = result.order.steps[-1]
    assert charge.status == "failed" and (charge.error or "").startswith("card_declined")
    assert h.erp.get_invoice(result.order.invoice_ids[0]).status == "open"


async def test_cancel_during_a_running_step_takes_effect_when_the_step_ends(h: Harness) -> None:
    cid = await card_customer(h)
    h.set_fault("notifications", "slow")  # the confirmation e-mail takes two seconds
    handle = await h.start(await h.input(cid, SETUP, quote=False, payment="card_on_file"))
    await h.until(
        handle,
        "order",
        Order,
        lambda o: any(
            s.name == "email:order_confirmation" and s.status == "running" for s in o.steps
        ),
    )
    await h.update_accepted(handle, "cancel", CancelRequest(reason="wrong address"))
    order = (await handle.result()).order
    assert order is not None and order.status == "cancelled"
    by_name = {s.name: s.status for s in order.steps}
    assert by_name["email:order_confirmation"] == "done"
    assert by_name["create_sales_order"] == "compensated"
    assert "issue_invoice:services" not in by_name and order.invoice_ids == []
