"""End to end over HTTP on the real dev server and database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from api.app import app_from_settings
from api.idempotency import derived_id
from tests.factories import CARD_OK, CARD_TIMEOUT
from tests.integration.conftest import Stack, service_order
from worker import build_worker
from workflows.contracts.quote_to_order import AcceptRequest, QuoteToOrderInput

pytestmark = pytest.mark.slow


CUSTOMER_NO_CARD = {
    "name": "No Card Ltd",
    "email": "ap@nocard.example",
    "currency": "EUR",
    "credit_limit": "10000.00",
}


async def _setup(stack: Stack, card: str = CARD_OK, **customer: Any) -> str:
    http = stack.http
    for product in (
        {
            "sku": "WIDGET-1",
            "name": "Widget",
            "kind": "physical",
            "unit_price": "19.99",
            "currency": "EUR",
            "stock": 50,
        },
        {
            "sku": "SETUP",
            "name": "Setup",
            "kind": "service",
            "unit_price": "150.00",
            "currency": "EUR",
        },
    ):
        r = await http.post("/v1/products", json=product)
        assert r.status_code in (201, 409), r.text
    body = {
        "name": "Acme GmbH",
        "email": "billing@acme.example",
        "currency": "EUR",
        "credit_limit": "10000.00",
        "tax_rate": "0.19",
        **customer,
    }
    r = await http.post("/v1/customers", json=body)
    assert r.status_code == 201, r.text
    cid: str = r.json()["id"]
    r = await http.post(
        f"/v1/customers/{cid}/payment-methods",
        json={"card_number": card, "exp_month": 12, "exp_year": 2031, "cvc": "123"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["last4"] == card[-4:]
    return cid


async def test_quote_accept_ship_deliver_ends_completed_and_paid(stack: Stack) -> None:
    http = stack.http
    cid = await _setup(stack)
    r = await http.post(
        "/v1/quotes",
        json={
            "customer_id": cid,
            "lines": [{"sku": "WIDGET-1", "quantity": 2}, {"sku": "SETUP", "quantity": 1}],
        },
    )
    assert r.status_code == 201, r.text
    quote = r.json()
    # 2 x 19.99 = 39.98; + 150.00 = 189.98; tax 189.98 x 0.19 = 36.0962 -> 36.10
    assert (quote["status"], quote["subtotal"], quote["tax"], quote["total"]) == (
        "open",
        "189.98",
        "36.10",
        "226.08",
    )
    accept, once = f"/v1/quotes/{quote['id']}/accept", {"Idempotency-Key": "accept-1"}
    # Paying by card needs a card on file: refused at the field, the quote still open.
    bare = await http.post("/v1/customers", json=CUSTOMER_NO_CARD)
    other = await http.post(
        "/v1/quotes",
        json={"customer_id": bare.json()["id"], "lines": [{"sku": "SETUP", "quantity": 1}]},
    )
    refused = await http.post(
        f"/v1/quotes/{other.json()['id']}/accept", json={"payment": "card_on_file"}
    )
    assert refused.status_code == 422 and refused.json()["errors"][0]["loc"] == ["body", "payment"]
    assert (await http.get(f"/v1/quotes/{other.json()['id']}")).json()["status"] == "open"
    # The first try reached Temporal, but its answer was lost and its key given back (an
    # RPC timeout): the retry sends the same Update again and is answered its outcome.
    first_try = derived_id(f"admin:POST:{accept}", "accept-1", "upd")
    await stack.env.client.get_workflow_handle(quote["process_id"]).execute_update(
        "accept", AcceptRequest(payment="card_on_file"), id=first_try
    )
    r = await http.post(accept, json={"payment": "card_on_file"}, headers=once)
    assert r.status_code == 200, r.text
    order_id = r.json()["order_id"]
    # The client's retry (its answer lost) gets the acceptance again, not a 409.
    again = await http.post(accept, json={"payment": "card_on_file"}, headers=once)
    assert again.status_code == 200 and again.json() == r.json()
    assert (await http.post(accept, json={"payment": "card_on_file"})).status_code == 409
    order = await stack.poll(f"/v1/orders/{order_id}", lambda o: o["status"] == "fulfilling")
    assert order["process_id"] == quote["process_id"]
    shipment = order["shipments"][0]
    for event in ("shipped", "delivered"):
        r = await http.post(
            f"/v1/orders/{order_id}/shipments/{shipment['id']}/events",
            json={"event": event, "tracking_number": "1Z999"},
        )
        assert r.status_code == 200, r.text
    order = await stack.poll(f"/v1/orders/{order_id}", lambda o: o["status"] == "completed")
    assert len(order["invoice_ids"]) == 2
    r = await http.get("/v1/invoices", params={"customer_id": cid})
    invoices = r.json()["data"]
    assert sorted(i["status"] for i in invoices) == ["paid", "paid"]
    assert sum(Decimal(i["total"]) for i in invoices) == Decimal("226.08")
    stock = (await http.get("/v1/inventory/WIDGET-1")).json()
    assert (stock["on_hand"], stock["reserved"]) == (48, 0)
    process = (await http.get(f"/v1/processes/{quote['process_id']}")).json()
    assert process["status"] == "completed" and process["history_length"] > 0
    listed = await stack.poll(f"/v1/processes?customer_id={cid}", lambda b: len(b["data"]) == 1)
    assert listed["data"][0]["process_id"] == quote["process_id"]


async def test_card_that_times_out_after_charging_is_charged_exactly_once(stack: Stack) -> None:
    cid = await _setup(stack, card=CARD_TIMEOUT)
    r = await stack.http.post(
        "/v1/orders",
        json=service_order(cid),
    )
    assert r.status_code == 201, r.text
    order = await stack.poll(f"/v1/orders/{r.json()['id']}", lambda o: o["status"] == "completed")
    inv_id = order["invoice_ids"][0]
    charge = next(s for s in order["steps"] if s["name"] == f"charge_invoice:{inv_id}")
    assert (charge["status"], charge["attempts"]) == ("done", 2)
    key = f"{order['process_id']}:charge:{inv_id}"
    assert await stack.systems.gateway.charges_for_key(key) == 1
    invoice = (await stack.http.get(f"/v1/invoices/{inv_id}")).json()
    assert (invoice["status"], invoice["amount_paid"], invoice["amount_due"]) == (
        "paid",
        "178.50",
        "0.00",
    )


async def test_operator_retries_a_step_that_failed_while_the_gateway_was_down(
    stack: Stack,
) -> None:
    http = stack.http
    cid = await _setup(stack)
    r = await http.post("/v1/sandbox/faults", json={"system": "payments", "mode": "down"})
    assert r.status_code == 200, r.text
    r = await http.post(
        "/v1/orders",
        json=service_order(cid),
    )
    order_id = r.json()["id"]
    order = await stack.poll(
        f"/v1/orders/{order_id}", lambda o: o["status"] == "needs_attention", timeout=60
    )
    failed = order["failed_step"]
    assert failed["name"].startswith("charge_invoice:") and failed["attempts"] == 5
    waiting = await stack.poll(
        f"/v1/processes?status=needs_attention&customer_id={cid}",
        lambda b: len(b["data"]) == 1,
    )
    assert waiting["data"][0]["needs_attention"] is True
    # A skip result that does not fit the step is refused where it is wrong; nothing moves.
    r = await http.post(
        f"/v1/processes/{order['process_id']}/skip", json={"result": {"amount": "lots"}}
    )
    assert r.status_code == 422, r.text
    assert [e["loc"] for e in r.json()["errors"]] == [["body", "result", "amount"]]
    assert "errors.pydantic.dev" not in r.text
    await http.post("/v1/sandbox/faults", json={"system": "payments", "mode": "ok"})
    r = await http.post(f"/v1/processes/{order['process_id']}/retry")
    assert r.status_code == 200, r.text
    assert r.json()["step"] == failed["name"] and r.json()["status"] == "confirmed"
    order = await stack.poll(f"/v1/orders/{order_id}", lambda o: o["status"] == "completed")
    assert order["failed_step"] is None
    r = await http.post(f"/v1/processes/{order['process_id']}/retry")
    assert r.status_code == 409, r.text  # the process has ended
    r = await http.post("/v1/processes/q2o-ord_never/retry")
    assert r.status_code == 404, r.text
    # An unknown order or quote is named as the client named it.
    r = await http.post("/v1/orders/ord_never/cancel", json={"reason": "no such order"})
    assert r.status_code == 404 and r.json()["detail"] == "order ord_never not found", r.text
    r = await http.post("/v1/quotes/quo_never/decline", json={})
    assert r.status_code == 404 and r.json()["detail"] == "quote quo_never not found", r.text


async def test_quote_on_a_test_clock_expires_when_the_clock_passes_validity(stack: Stack) -> None:
    http = stack.http
    r = await http.post("/v1/test-clocks", json={"frozen_time": "2026-01-01T00:00:00Z"})
    assert r.status_code == 201, r.text
    clock = r.json()
    cid = await _setup(stack, test_clock_id=clock["id"])
    r = await http.post(
        "/v1/quotes",
        json={
            "customer_id": cid,
            "lines": [{"sku": "SETUP", "quantity": 1}],
            "valid_days": 10,
        },
    )
    quote = r.json()
    assert quote["expires_at"].startswith("2026-01-11T00:00:00")
    await stack.poll(f"/v1/processes?customer_id={cid}", lambda b: len(b["data"]) == 1)
    r = await http.post(
        f"/v1/test-clocks/{clock['id']}/advance", json={"frozen_time": "2026-01-12T00:00:00Z"}
    )
    assert r.status_code == 200 and r.json()["status"] == "advancing"
    await stack.poll(f"/v1/test-clocks/{clock['id']}", lambda c: c["status"] == "ready")
    again = await http.post(
        f"/v1/test-clocks/{clock['id']}/advance", json={"frozen_time": "2026-01-12T00:00:00Z"}
    )
    assert again.status_code == 200 and again.json()["status"] == "ready"  # a retry
    quote = (await http.get(f"/v1/quotes/{quote['id']}")).json()
    assert quote["status"] == "expired"
    r = await http.post(
        f"/v1/test-clocks/{clock['id']}/advance", json={"frozen_time": "2025-12-31T00:00:00Z"}
    )
    assert r.status_code == 409


async def test_a_clock_reaches_a_process_visibility_does_not_list_yet(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Temporal's visibility lags behind a start: here it lists nothing at all. An advance
    right after the quote still expires it, and the clock turns ready only after that."""

    async def nothing_listed() -> AsyncIterator[Any]:
        for _ in ():
            yield _

    monkeypatch.setattr(Client, "list_workflows", lambda self, *a, **k: nothing_listed())
    http = stack.http
    r = await http.post("/v1/test-clocks", json={"frozen_time": "2026-01-01T00:00:00Z"})
    clock = r.json()
    cid = await _setup(stack, test_clock_id=clock["id"])
    lines = [{"sku": "SETUP", "quantity": 1}]
    r = await http.post("/v1/quotes", json={"customer_id": cid, "lines": lines, "valid_days": 10})
    assert r.status_code == 201, r.text
    quote = r.json()
    advance = f"/v1/test-clocks/{clock['id']}/advance"
    r = await http.post(advance, json={"frozen_time": "2026-01-12T00:00:00Z"})
    assert r.status_code == 200 and r.json()["status"] == "advancing"
    await stack.poll(f"/v1/test-clocks/{clock['id']}", lambda c: c["status"] == "ready")
    assert (await http.get(f"/v1/quotes/{quote['id']}")).json()["status"] == "expired"
    # The expired quote's process has ended: the clock, reading it, drops it from its register.
    await http.post(advance, json={"frozen_time": "2026-01-13T00:00:00Z"})
    await stack.poll(f"/v1/test-clocks/{clock['id']}", lambda c: c["status"] == "ready")
    assert stack.systems.erp.clock_processes(clock["id"]) == {}


async def test_an_order_retried_with_its_idempotency_key_starts_one_process(stack: Stack) -> None:
    cid = await _setup(stack)
    body = service_order(cid, "invoice")
    headers = {"Idempotency-Key": "shop-order-4711"}
    first = await stack.http.post("/v1/orders", json=body, headers=headers)
    again = await stack.http.post("/v1/orders", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    other = await stack.http.post(
        "/v1/orders", json={**body, "payment": "card_on_file"}, headers=headers
    )
    assert other.status_code == 409
    await stack.poll(f"/v1/orders/{first.json()['id']}", lambda o: o["status"] == "completed")
    listed = await stack.poll(f"/v1/processes?customer_id={cid}", lambda b: len(b["data"]) >= 1)
    assert [p["process_id"] for p in listed["data"]] == [first.json()["process_id"]]
    invoices = (await stack.http.get("/v1/invoices", params={"customer_id": cid})).json()["data"]
    assert len(invoices) == 1


async def test_orders_placed_at_once_share_a_credit_limit_not_exceed_it(stack: Stack) -> None:
    """Five 50.00 service orders placed together by a customer with a 100.00 limit: two
    run, three wait on credit; the account counts what is ordered and not yet invoiced."""
    cid = await _setup(stack, credit_limit="100.00", tax_rate="0")
    r = await stack.http.post(
        "/v1/products",
        json={
            "sku": "CALL",
            "name": "Call",
            "kind": "service",
            "unit_price": "50.00",
            "currency": "EUR",
        },
    )
    assert r.status_code in (201, 409), r.text
    body = {"customer_id": cid, "lines": [{"sku": "CALL", "quantity": 1}], "payment": "invoice"}
    placed = await asyncio.gather(*(stack.http.post("/v1/orders", json=body) for _ in range(5)))
    assert [r.status_code for r in placed] == [201] * 5
    settled = [
        await stack.poll(
            f"/v1/orders/{r.json()['id']}", lambda o: o["status"] in ("completed", "credit_hold")
        )
        for r in placed
    ]
    assert sorted(o["status"] for o in settled) == ["completed"] * 2 + ["credit_hold"] * 3
    for o in settled:  # each held at whatever was then invoiced or merely ordered
        if o["status"] == "credit_hold":
            assert o["hold_reason"].endswith("order 50.00 exceeds credit limit 100.00 by 50.00")
    account = (await stack.http.get(f"/v1/customers/{cid}")).json()["account"]
    assert account == {
        "open_ar": "100.00",
        "overdue": "0.00",
        "credit_available": "0.00",
        "open_orders": "0.00",
    }
    for o in settled:
        if o["status"] == "credit_hold":
            r = await stack.http.post(f"/v1/orders/{o['id']}/cancel", json={"reason": "limit"})
            assert r.status_code == 200, r.text


async def test_an_order_is_readable_at_once_and_runs_when_a_worker_arrives(stack: Stack) -> None:
    """The API writes an order's first read model: what it answered can be read back even
    before any worker has picked the process up (a query would wait for one)."""
    cid = await _setup(stack)
    settings = stack.settings.model_copy(update={"task_queue": f"later-{uuid.uuid4()}"})
    transport = httpx.ASGITransport(app=app_from_settings(settings))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://o2c", headers=stack.http.headers
    ) as http:
        body = {
            "customer_id": cid,
            "lines": [{"sku": "SETUP", "quantity": 2}],
            "payment": "invoice",
        }
        r = await http.post("/v1/orders", json=body)
        assert r.status_code == 201, r.text
        placed = r.json()
        r = await asyncio.wait_for(http.get(f"/v1/orders/{placed['id']}"), timeout=5)
        assert r.status_code == 200 and r.json() == placed
        assert placed["status"] == "received" and placed["steps"] == []
        # The process checks and commits the credit itself, once a worker runs it.
        history = await stack.env.client.get_workflow_handle(placed["process_id"]).fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes
        inp = pydantic_data_converter.payload_converter.from_payload(
            started.input.payloads[0], QuoteToOrderInput
        )
        assert inp.commit_credit and inp.credit is None
        async with build_worker(stack.env.client, stack.systems, settings):
            done = await stack.poll(
                f"/v1/orders/{placed['id']}", lambda o: o["status"] == "completed"
            )
    assert [s["name"] for s in done["steps"]][:2] == ["check_credit", "create_sales_order"]
    assert done["total"] == placed["total"] == "357.00"


async def test_processes_page_with_cursors_and_refuse_one_not_handed_out(stack: Stack) -> None:
    cid = await _setup(stack)
    for _ in range(3):
        assert (await stack.http.post("/v1/orders", json=service_order(cid, "invoice"))).is_success
    await stack.poll(f"/v1/processes?customer_id={cid}", lambda b: len(b["data"]) == 3)
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"customer_id": cid, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await stack.http.get("/v1/processes", params=params)).json()
        seen += [p["process_id"] for p in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        tampered = cursor[:-3] + ("AAA" if cursor[-3:] != "AAA" else "BBB")
        for bad in (tampered, "AAAA", "%%%"):
            r = await stack.http.get("/v1/processes", params={**params, "cursor": bad})
            assert r.status_code == 422, (bad, r.text)
    assert len(seen) == len(set(seen)) == 3
