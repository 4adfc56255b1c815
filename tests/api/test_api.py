"""The HTTP conventions of API.md: auth and roles, problem+json, idempotency, lists."""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.encoders import jsonable_encoder
from fastapi.testclient import TestClient
from pydantic import TypeAdapter

from api.routes.processes import visibility_query
from domain.errors import InvalidInput
from domain.invoicing import DraftInvoice, InvoiceLine
from systems.db import make_engine
from systems.quoting import price_request, process_input
from telemetry import ContextFilter
from tests.api.conftest import key
from workflows.contracts.quote_to_order import (
    LineRequest,
    Order,
    Quote,
    initial_order,
    initial_quote,
)

CUSTOMER = {
    "name": "Acme GmbH",
    "email": "billing@acme.example",
    "currency": "EUR",
    "credit_limit": "1000.00",
    "tax_rate": "0.19",
}
PRODUCT = {
    "sku": "WIDGET-1",
    "name": "Widget",
    "kind": "physical",
    "unit_price": "19.99",
    "currency": "EUR",
    "stock": 10,
}


def assert_problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["title"] and body["type"].startswith("https://")
    assert "Traceback" not in r.text
    return body


def test_no_key_and_a_bad_key_are_401_with_a_bearer_challenge(client: TestClient) -> None:
    r = client.get("/v1/customers", headers={"Authorization": ""})
    assert_problem(r, 401)
    assert r.headers["www-authenticate"] == "Bearer"
    assert_problem(client.get("/v1/customers", headers={"Authorization": "Bearer nope"}), 401)


def test_roles_include_the_ones_below_and_refuse_the_ones_above(client: TestClient) -> None:
    viewer = {"Authorization": f"Bearer {key(client, 'viewer')}"}
    operator = {"Authorization": f"Bearer {key(client, 'operator')}"}
    assert client.get("/v1/customers", headers=viewer).status_code == 200
    body = assert_problem(client.post("/v1/customers", json=CUSTOMER, headers=viewer), 403)
    assert "admin" in body["detail"]
    assert_problem(client.post("/v1/products", json=PRODUCT, headers=operator), 403)
    assert client.post("/v1/customers", json=CUSTOMER).status_code == 201
    # API.md: cancel is an operator's action, declining a quote a client's; a decline,
    # approval or rejection needs no body (Temporal is unreachable here: 503 past both).
    client_key = {"Authorization": f"Bearer {key(client, 'client')}"}
    cancel = {"reason": "duplicate"}
    r = client.post("/v1/orders/ord_x/cancel", json=cancel, headers=client_key)
    assert "operator" in assert_problem(r, 403)["detail"]
    assert_problem(client.post("/v1/orders/ord_x/cancel", json=cancel, headers=operator), 503)
    assert_problem(client.post("/v1/quotes/quo_x/decline", headers=client_key), 503)
    for action in ("approve", "reject"):
        assert_problem(client.post(f"/v1/quotes/quo_x/{action}", headers=operator), 503)


def test_unknown_ids_and_routes_are_404_problems(client: TestClient) -> None:
    assert_problem(client.get("/v1/customers/cus_missing"), 404)
    assert_problem(client.get("/v1/products/NOPE"), 404)
    assert_problem(client.get("/v1/invoices/inv_missing"), 404)
    assert_problem(client.get("/v1/nothing-here"), 404)
    assert_problem(client.delete("/v1/customers"), 405)


def test_duplicate_sku_is_409(client: TestClient) -> None:
    assert client.post("/v1/products", json=PRODUCT).status_code == 201
    assert_problem(client.post("/v1/products", json=PRODUCT), 409)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"credit_limit": 1000.5}, "credit_limit"),
        ({"currency": "XXX"}, "currency"),
        ({"email": "not-an-email"}, "email"),
        ({"billing_day": 29}, "billing_day"),
        ({"surprise": 1}, "surprise"),
        ({"credit_limit": "12.345"}, None),
        ({"credit_limit": "1e999999"}, None),
    ],
)
def test_invalid_customer_input_is_422_and_creates_nothing(
    client: TestClient, change: dict[str, Any], field: str | None
) -> None:
    body = assert_problem(client.post("/v1/customers", json={**CUSTOMER, **change}), 422)
    if field is not None:
        assert any(field in e["loc"] for e in body["errors"])
    assert client.get("/v1/customers").json()["data"] == []


def test_malformed_json_and_wrong_content_type_are_422(client: TestClient) -> None:
    r = client.post(
        "/v1/customers", content=b'{"name": ', headers={"Content-Type": "application/json"}
    )
    assert assert_problem(r, 422)["type"].endswith("malformed_json")
    r = client.post("/v1/customers", content=b"name=x", headers={"Content-Type": "text/plain"})
    assert_problem(r, 422)


def test_idempotency_key_replays_the_first_answer_and_refuses_another_body(
    client: TestClient,
) -> None:
    h = {"Idempotency-Key": "create-acme-1"}
    first = client.post("/v1/customers", json=CUSTOMER, headers=h)
    again = client.post("/v1/customers", json=CUSTOMER, headers=h)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert len(client.get("/v1/customers").json()["data"]) == 1
    other = client.post("/v1/customers", json={**CUSTOMER, "name": "Other"}, headers=h)
    assert_problem(other, 409)
    # The same JSON spelled another way (key order, spacing) is the same request.
    respelled = json.dumps(dict(reversed(list(CUSTOMER.items()))), indent=2)
    r = client.post(
        "/v1/customers", content=respelled, headers={**h, "Content-Type": "application/json"}
    )
    assert r.status_code == 201 and r.json()["id"] == first.json()["id"]
    assert_problem(
        client.post("/v1/customers", json=CUSTOMER, headers={"Idempotency-Key": "k" * 256}), 422
    )


def test_concurrent_duplicates_with_one_idempotency_key_create_once(
    client_any_db: TestClient,
) -> None:
    client = client_any_db
    barrier, answers = threading.Barrier(8), []

    def post() -> None:
        barrier.wait()
        answers.append(
            client.post("/v1/customers", json=CUSTOMER, headers={"Idempotency-Key": "dup"})
        )

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in answers) == [201] * 8
    assert len({r.json()["id"] for r in answers}) == 1
    assert len(client.get("/v1/customers").json()["data"]) == 1


def test_a_request_that_failed_gives_its_idempotency_key_back(client: TestClient) -> None:
    h = {"Idempotency-Key": "restock-1"}
    adjust = {"delta": 5, "reason": "delivery"}
    assert_problem(client.post("/v1/inventory/WIDGET-1/adjustments", json=adjust, headers=h), 404)
    client.post("/v1/products", json=PRODUCT)  # 10 in stock
    first = client.post("/v1/inventory/WIDGET-1/adjustments", json=adjust, headers=h)
    again = client.post("/v1/inventory/WIDGET-1/adjustments", json=adjust, headers=h)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() and first.json()["on_hand"] == 15
    assert client.get("/v1/inventory/WIDGET-1").json()["on_hand"] == 15


def test_an_api_key_created_twice_with_one_idempotency_key_is_one_key(client: TestClient) -> None:
    h = {"Idempotency-Key": "ci-key"}
    body = {"name": "ci", "role": "viewer"}
    first = client.post("/v1/api-keys", json=body, headers=h)
    again = client.post("/v1/api-keys", json=body, headers=h)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    secret = first.json()["key"]
    r = client.get("/v1/customers", headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 200
    stored = client.app.state.o2c.systems.erp  # type: ignore[attr-defined]
    with stored._engine.connect() as conn:  # the secret is kept only sealed
        bodies = [b for (b,) in conn.exec_driver_sql("SELECT body FROM platform_idempotency")]
    assert bodies and not any(secret in b for b in bodies)
    assert_problem(client.post("/v1/api-keys", json={**body, "role": "admin"}, headers=h), 409)
    other = client.post("/v1/api-keys", json=body, headers={"Idempotency-Key": "ci-key-2"})
    assert other.json()["id"] != first.json()["id"] and other.json()["key"] != secret


def test_quote_when_temporal_is_down_is_503_with_retry_after(client: TestClient) -> None:
    cid = client.post("/v1/customers", json=CUSTOMER).json()["id"]
    client.post("/v1/products", json=PRODUCT)
    r = client.post(
        "/v1/quotes", json={"customer_id": cid, "lines": [{"sku": "WIDGET-1", "quantity": 1}]}
    )
    assert_problem(r, 503)
    assert r.headers["retry-after"] == "5"
    assert client.get("/v1/inventory/WIDGET-1").json()["reserved"] == 0


def test_a_quote_or_order_naming_an_unknown_partner_is_404(client: TestClient) -> None:
    cid = client.post("/v1/customers", json=CUSTOMER).json()["id"]
    client.post("/v1/products", json=PRODUCT)
    line = [{"sku": "WIDGET-1", "quantity": 1}]
    quote = {"customer_id": cid, "lines": line, "partner_id": "prt_nope"}
    assert "prt_nope" in assert_problem(client.post("/v1/quotes", json=quote), 404)["detail"]
    order = {**quote, "payment": "invoice"}
    assert_problem(client.post("/v1/orders", json=order), 404)
    assert client.get("/v1/inventory/WIDGET-1").json()["reserved"] == 0


def test_an_unknown_sku_or_plan_is_refused_at_its_line(client: TestClient) -> None:
    cid = client.post("/v1/customers", json=CUSTOMER).json()["id"]
    client.post("/v1/products", json=PRODUCT)
    lines = [{"sku": "WIDGET-1", "quantity": 1}, {"sku": "NOPE", "quantity": 1}]
    body = assert_problem(client.post("/v1/quotes", json={"customer_id": cid, "lines": lines}), 422)
    assert body["errors"] == [{"loc": ["body", "lines", 1, "sku"], "msg": "unknown sku NOPE"}]
    order = {"customer_id": cid, "lines": [{"plan_code": "gold", "quantity": 1}]}
    body = assert_problem(client.post("/v1/orders", json={**order, "payment": "invoice"}), 422)
    assert body["errors"][0]["loc"] == ["body", "lines", 0, "plan_code"]


def test_paying_by_card_needs_a_card_on_file(client: TestClient) -> None:
    """An order to be paid by card, for a customer with no card, is refused at its
    ``payment`` before anything starts; with a card it goes on (to Temporal, down here)."""
    cid = client.post("/v1/customers", json=CUSTOMER).json()["id"]
    client.post("/v1/products", json=PRODUCT)
    order = {"customer_id": cid, "lines": [{"sku": "WIDGET-1", "quantity": 1}]}
    body = assert_problem(client.post("/v1/orders", json={**order, "payment": "card_on_file"}), 422)
    assert body["errors"][0]["loc"] == ["body", "payment"] and "no card on file" in body["detail"]
    assert client.get("/v1/inventory/WIDGET-1").json()["reserved"] == 0
    card = {"card_number": "4242424242424242", "exp_month": 12, "exp_year": 2031, "cvc": "123"}
    assert client.post(f"/v1/customers/{cid}/payment-methods", json=card).status_code == 201
    assert_problem(client.post("/v1/orders", json={**order, "payment": "card_on_file"}), 503)


def test_card_is_tokenised_and_its_number_never_stored_or_echoed(
    client: TestClient, tmp_path: Any
) -> None:
    cid = client.post("/v1/customers", json=CUSTOMER).json()["id"]
    card = "4242424242424242"
    body = {"card_number": card, "exp_month": 12, "exp_year": 2031, "cvc": "123"}
    url, key = f"/v1/customers/{cid}/payment-methods", {"Idempotency-Key": "card-1"}
    r = client.post(url, json=body, headers=key)
    assert r.status_code == 201 and r.json()["brand"] == "visa" and r.json()["last4"] == "4242"
    assert card not in r.text
    assert client.post(url, json=body, headers=key).json() == r.json()  # a retry
    other = {**body, "card_number": "5555555555554444"}
    assert_problem(client.post(url, json=other, headers=key), 409)
    # Another card with the same last digits and expiry, or another CVC, is another request.
    same_end = {**body, "card_number": "4000000000024242"}
    assert client.post(f"/v1/customers/{cid}/payment-methods", json=same_end).status_code == 201
    for changed in (same_end, {**body, "cvc": "999"}):
        assert_problem(client.post(url, json=changed, headers=key), 409)
    # Nothing stored is the number, or a hash from which the number (a few hundred
    # thousand candidates, given its last digits) or the CVC could be found again.
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    derived = {hashlib.sha256(x).hexdigest() for x in (canonical, card.encode(), b"123")}
    db = sqlite3.connect(tmp_path / "o2c.db")
    for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'"):
        for row in db.execute(f'SELECT * FROM "{table}"'):
            text = " ".join(map(str, row))
            assert card not in text and not any(d in text for d in derived), table
    assert {f for (f,) in db.execute("SELECT fingerprint FROM gw_tokens")} == {""}
    bad = client.post(
        f"/v1/customers/{cid}/payment-methods",
        json={"card_number": "4242424242424241", "exp_month": 12, "exp_year": 2031, "cvc": "123"},
    )
    assert_problem(bad, 422)


def test_price_book_overrides_list_price_and_inventory_adjusts(client: TestClient) -> None:
    cid = client.post("/v1/customers", json=CUSTOMER).json()["id"]
    client.post("/v1/products", json=PRODUCT)
    r = client.put(
        f"/v1/customers/{cid}/prices", json={"items": [{"sku": "WIDGET-1", "unit_price": "17.50"}]}
    )
    assert r.status_code == 200 and r.json()["items"][0]["unit_price"] == "17.50"
    twice = [{"sku": "WIDGET-1", "unit_price": "1.00"}, {"sku": "WIDGET-1", "unit_price": "2.00"}]
    assert_problem(client.put(f"/v1/customers/{cid}/prices", json={"items": twice}), 422)
    assert client.get(f"/v1/customers/{cid}/prices").json()["items"][0]["unit_price"] == "17.50"
    r = client.post("/v1/inventory/WIDGET-1/adjustments", json={"delta": 5, "reason": "count"})
    assert r.json() == {"sku": "WIDGET-1", "on_hand": 15, "reserved": 0, "available": 15}
    assert_problem(
        client.post("/v1/inventory/WIDGET-1/adjustments", json={"delta": -20, "reason": "loss"}),
        409,
    )
    huge = {"delta": 2**63, "reason": "typo"}  # beyond any stock column
    assert_problem(client.post("/v1/inventory/WIDGET-1/adjustments", json=huge), 422)
    assert_problem(client.post("/v1/products", json={**PRODUCT, "sku": "BIG", "stock": 2**31}), 422)
    assert client.get("/v1/inventory/WIDGET-1").json()["on_hand"] == 15


def test_test_clocks_move_only_forward_and_faults_switch(client: TestClient) -> None:
    r = client.post("/v1/test-clocks", json={"frozen_time": "2026-01-01T00:00:00Z"})
    assert r.status_code == 201 and r.json()["status"] == "ready"
    clk = r.json()["id"]
    back = client.post(
        f"/v1/test-clocks/{clk}/advance", json={"frozen_time": "2025-01-01T00:00:00Z"}
    )
    assert_problem(back, 409)
    # Temporal is unreachable here: the clock moves, the answer is 503, and the advance
    # retried as told (Retry-After) is the same request again, not a move backwards.
    forward = {"frozen_time": "2026-02-01T00:00:00Z"}
    for _ in range(2):
        assert_problem(client.post(f"/v1/test-clocks/{clk}/advance", json=forward), 503)
    # Times carry their offset and are kept in UTC; a naive or unreachable one is refused.
    r = client.post("/v1/test-clocks", json={"frozen_time": "2026-01-02T01:00:00+01:00"})
    assert r.status_code == 201 and r.json()["frozen_time"].startswith("2026-01-02T00:00:00")
    assert_problem(client.post("/v1/test-clocks", json={"frozen_time": 1700000000}), 422)
    for bad in ("2026-03-01T00:00:00", "0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00"):
        assert_problem(client.post("/v1/test-clocks", json={"frozen_time": bad}), 422)
        assert_problem(
            client.post(f"/v1/test-clocks/{clk}/advance", json={"frozen_time": bad}), 422
        )
    r = client.post("/v1/sandbox/faults", json={"system": "payments", "mode": "down"})
    assert r.json() == {"system": "payments", "mode": "down"}
    modes = {f["system"]: f["mode"] for f in client.get("/v1/sandbox/faults").json()}
    assert modes == {"erp": "ok", "payments": "down", "notifications": "ok"}
    assert_problem(client.post("/v1/sandbox/faults", json={"system": "bank", "mode": "down"}), 422)


def test_lists_page_with_a_cursor(client: TestClient) -> None:
    ids = {
        client.post("/v1/customers", json={**CUSTOMER, "name": f"C{i}"}).json()["id"]
        for i in range(3)
    }
    first = client.get("/v1/customers?limit=2").json()
    assert len(first["data"]) == 2 and first["next_cursor"]
    second = client.get(f"/v1/customers?limit=2&cursor={first['next_cursor']}").json()
    assert second["next_cursor"] is None
    assert {c["id"] for c in first["data"] + second["data"]} == ids
    assert_problem(client.get("/v1/customers?limit=0"), 422)
    assert_problem(client.get("/v1/customers?cursor=%%%"), 422)
    # One list's cursor is refused by another (it would page from a foreign id).
    body = assert_problem(client.get(f"/v1/invoices?cursor={first['next_cursor']}"), 422)
    assert body["errors"][0]["loc"] == ["query", "cursor"]


BAD_BODIES: list[Any] = [None, [], "x", 1.5, {"x": 1}, {"amount": 1.5}, {"lines": "many"}]


def test_no_malformed_body_to_any_post_route_gets_a_500(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    posts = [p for p, ops in spec["paths"].items() if "post" in ops]
    assert len(posts) >= 15
    for path in posts:
        url = path.replace("{", "").replace("}", "")
        for body in BAD_BODIES:
            r = client.post(url, json=body)
            assert r.status_code < 500 or r.status_code == 503, (path, body, r.text)
            assert r.headers["content-type"].startswith("application/problem+json"), path


def test_console_is_served_with_a_strict_policy_and_no_path_traversal(
    client: TestClient,
) -> None:
    r = client.get("/console")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert '<script type="module" src="/console/static/app.js">' in r.text
    assert (
        client.get("/console/static/app.js").headers["content-type"].startswith("text/javascript")
    )
    for bad in ("..%2Fapp.py", "%2E%2E%2Froutes%2Fconsole.py", ".hidden.js", "missing.js"):
        assert client.get(f"/console/static/{bad}").status_code == 404, bad


def test_metrics_count_requests_by_route_template_and_status(client: TestClient) -> None:
    client.get("/v1/customers/cus_missing")
    client.get("/v1/customers/cus_other")
    client.get("/v1/customers")
    text = client.get("/metrics").text
    route = 'method="GET",route="/v1/customers/{customer_id}"'
    assert f'o2c_http_requests_total{{{route},status="404"}} 2' in text
    assert 'o2c_http_requests_total{method="GET",route="/v1/customers",status="200"} 1' in text
    assert f"o2c_http_request_duration_seconds_count{{{route}}} 2" in text


def test_an_unreachable_database_is_503_with_retry_after_and_not_ready(
    client: TestClient, tmp_path: Path
) -> None:
    erp = client.app.state.o2c.systems.erp  # type: ignore[attr-defined]
    erp._engine = make_engine(f"sqlite:///{tmp_path}/no-such-folder/o2c.db")
    body = assert_problem(client.get("/v1/customers"), 503)
    assert "database" in body["detail"].lower()
    assert client.get("/v1/customers").headers["retry-after"] == "5"
    r = client.post("/v1/customers", json=CUSTOMER)
    assert_problem(r, 503)
    ready = client.get("/readyz")
    assert ready.headers["retry-after"] == "5"
    assert assert_problem(ready, 503)["database"].startswith("unavailable")


def test_the_nul_character_is_refused_on_every_database(client_any_db: TestClient) -> None:
    """PostgreSQL cannot store U+0000: refused at the edge (422) on SQLite alike."""
    client = client_any_db
    body = assert_problem(client.post("/v1/customers", json={**CUSTOMER, "name": "a\x00b"}), 422)
    assert body["errors"] == [{"loc": ["body"], "msg": "contains U+0000"}]
    assert client.get("/v1/customers").json()["data"] == []
    assert_problem(client.post("/v1/products", json={**PRODUCT, "tags": {"k\x00": 1}}), 422)
    assert_problem(client.get("/v1/customers/cus_%00x"), 422)
    assert_problem(client.get("/v1/invoices", params={"customer_id": "a\x00b"}), 422)
    assert_problem(client.get("/v1/customers", params={"cursor": "AA"}), 422)  # decodes to NUL
    # A backslash-u sequence that is text, not NUL, passes.
    r = client.post("/v1/customers", json={**CUSTOMER, "name": "Back\\u0000slash Ltd"})
    assert r.status_code == 201 and r.json()["name"] == "Back\\u0000slash Ltd"


def test_rates_and_prices_finer_than_12_places_are_invalid_on_every_database(
    client_any_db: TestClient,
) -> None:
    """A rate of 45 digits passed SQLite and broke PostgreSQL's column (a 500): every amount
    and rate is refused beyond 12 decimal places, on both, and nothing is stored."""
    client = client_any_db
    long_rate = "0." + "1" * 45
    for bad in (
        {**CUSTOMER, "tax_rate": long_rate},
        {**CUSTOMER, "credit_limit": "1000.0000000000001"},
    ):
        body = assert_problem(client.post("/v1/customers", json=bad), 422)
        assert "12 decimal places" in json.dumps(body)
    assert client.get("/v1/customers").json()["data"] == []
    fine = {**CUSTOMER, "tax_rate": "0.123456789012"}
    r = client.post("/v1/customers", json=fine)
    assert r.status_code == 201 and r.json()["tax_rate"] == "0.123456789012"
    r = client.post("/v1/customers", json={**CUSTOMER, "tax_rate": "0E-50"})  # 50 places of 0
    assert r.status_code == 201 and r.json()["tax_rate"] == "0.000000000000"


def test_amounts_are_kept_to_the_currencys_minor_unit(client_any_db: TestClient) -> None:
    """API.md: amounts are decimal strings exact to the currency's minor unit."""
    client = client_any_db
    for limit in ("1000", "1E+3", "1000.0"):
        r = client.post("/v1/customers", json={**CUSTOMER, "credit_limit": limit})
        assert r.status_code == 201 and r.json()["credit_limit"] == "1000.00", limit
    cid = r.json()["id"]
    r = client.post("/v1/products", json={**PRODUCT, "unit_price": "19.900"})
    assert r.json()["unit_price"] == "19.90"
    assert client.get("/v1/products/WIDGET-1").json()["unit_price"] == "19.90"
    yen = {**PRODUCT, "sku": "YEN-1", "currency": "JPY", "unit_price": "100.00"}
    assert client.post("/v1/products", json=yen).json()["unit_price"] == "100"
    assert_problem(
        client.post("/v1/products", json={**yen, "sku": "YEN-2", "unit_price": "1.5"}), 422
    )
    plan = {"code": "PRO", "name": "Pro", "currency": "EUR", "interval": "month", "price": "10"}
    assert client.post("/v1/plans", json=plan).json()["price"] == "10.00"
    items = {"items": [{"sku": "WIDGET-1", "unit_price": "5"}]}
    assert (
        client.put(f"/v1/customers/{cid}/prices", json=items).json()["items"][0]["unit_price"]
        == "5.00"
    )
    overview = client.get(f"/v1/customers/{cid}/overview").json()
    assert overview["lifetime_value"] == "0.00"
    # A negative zero is zero; a tier's fee is an amount, exact to the currency.
    r = client.post("/v1/customers", json={**CUSTOMER, "credit_limit": "-0"})
    assert r.json()["credit_limit"] == "0.00"
    tiers: list[dict[str, Any]] = [
        {"up_to": 10, "unit_price": "0.5"},
        {"up_to": None, "unit_price": "0.25"},
    ]
    usage: list[dict[str, Any]] = [{"metric": "calls", "model": "volume", "tiers": tiers}]
    made = client.post("/v1/plans", json={**plan, "code": "TIERED", "usage": usage}).json()
    assert [t["flat_fee"] for t in made["usage"][0]["tiers"]] == ["0.00", "0.00"]
    yen_tiers = [{**tiers[0], "flat_fee": "0.5"}, tiers[1]]
    yen_plan = {**plan, "code": "YEN", "currency": "JPY", "price": "1000"}
    yen_usage = [{**usage[0], "tiers": yen_tiers}]
    assert_problem(client.post("/v1/plans", json={**yen_plan, "usage": yen_usage}), 422)
    # An invoice's amounts paid, credited and due, and a payment's refunds: "0.00", not "0";
    # a void invoice owes nothing.
    erp = client.app.state.o2c.systems.erp  # type: ignore[attr-defined]
    draft = DraftInvoice(
        customer_id=cid,
        currency="EUR",
        issue_date=datetime(2026, 5, 1, tzinfo=UTC).date(),
        due_date=datetime(2026, 5, 31, tzinfo=UTC).date(),
        lines=[
            InvoiceLine(
                kind="one_time",
                description="Setup",
                quantity=Decimal(1),
                unit_price=Decimal("10.00"),
                amount=Decimal("10.00"),
            )
        ],
        subtotal=Decimal("10.00"),
        tax=Decimal("1.90"),
        total=Decimal("11.90"),
    )
    first, second = erp.issue_invoice("inv-a", draft), erp.issue_invoice("inv-b", draft)
    body = client.get(f"/v1/invoices/{first.id}").json()
    assert (body["amount_paid"], body["amount_due"]) == ("0.00", "11.90")
    pay = {"amount": "5.00", "method": "bank_transfer", "reference": "r-1"}
    client.post(f"/v1/invoices/{first.id}/payments", json=pay).raise_for_status()
    overview = client.get(f"/v1/customers/{cid}/overview").json()
    assert [p["refunded"] for p in overview["payments"]] == ["0.00"]
    erp.void_invoice("void-b", second.id)
    body = client.get(f"/v1/invoices/{second.id}").json()
    assert (body["status"], body["total"], body["amount_due"]) == ("void", "11.90", "0.00")


def test_the_openapi_document_says_what_the_api_does(client: TestClient) -> None:
    """API.md: the served document must agree with the conventions."""
    doc = client.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert "Retry-After" in doc["paths"]["/readyz"]["get"]["responses"]["503"]["headers"]

    def keywords(node: Any) -> set[str]:
        if isinstance(node, dict):
            return set(node) | {k for v in node.values() for k in keywords(v)}
        return {k for v in node for k in keywords(v)} if isinstance(node, list) else set()

    # pydantic's constraint names are no JSON Schema keywords: none may leak into it.
    assert not keywords(doc["components"]["schemas"]) & {"ge", "gt", "le", "lt"}
    problem = {"$ref": "#/components/schemas/Problem"}
    creating = 0
    for path, item in doc["paths"].items():
        for method, op in item.items():
            params = op.get("parameters", [])
            assert not any(p["name"].lower() == "authorization" for p in params), path
            for status, answer in op["responses"].items():
                if status >= "400":
                    assert answer["content"] == {"application/problem+json": {"schema": problem}}
            if path.startswith("/v1/"):
                assert op["security"] == [{"bearer": []}], (method, path)
                assert {"401", "403", "503"} <= set(op["responses"]), (method, path)
            if method == "post" and "201" in op["responses"]:
                creating += 1
                assert any(p["name"] == "Idempotency-Key" for p in params), path
    assert creating >= 10
    # What the API answers is listed: an unknown id in a body, a body too large, sandbox off.
    for path in ("/v1/orders", "/v1/quotes", "/v1/customers", "/v1/test-clocks"):
        assert {"404", "413"} <= set(doc["paths"][path]["post"]["responses"]), path
    assert "customer_id" in doc["paths"]["/v1/orders"]["post"]["responses"]["404"]["description"]
    assert "security" not in doc["paths"]["/healthz"]["get"]
    limit = doc["components"]["schemas"]["CustomerCreate"]["properties"]["credit_limit"]
    assert limit["type"] == "string"  # never a float

    # Every amount a client sends states its canonical form and its bounds.
    def refs(node: Any) -> set[str]:
        if isinstance(node, dict):
            own = {node["$ref"].rsplit("/", 1)[1]} if "$ref" in node else set()
            return own | {r for v in node.values() for r in refs(v)}
        return {r for v in node for r in refs(v)} if isinstance(node, list) else set()

    schemas = doc["components"]["schemas"]
    names = refs([op.get("requestBody") for item in doc["paths"].values() for op in item.values()])
    while (more := refs([schemas[n] for n in names]) - names) and len(names) < 500:
        names |= more
    sent = [schemas[name] for name in names]
    amounts = [
        (field, variant)
        for schema in sent
        for field, prop in schema.get("properties", {}).items()
        for variant in prop.get("anyOf", [prop])
        if variant.get("format") == "decimal"
    ]
    assert len(amounts) >= 10
    for field, variant in amounts:
        assert (
            variant["pattern"].startswith("^") and "12 decimal places" in variant["description"]
        ), field
    # An answer to invalid input matches the document's Problem.
    body = assert_problem(client.post("/v1/customers", json={"name": 1}), 422)
    assert set(body) <= set(doc["components"]["schemas"]["Problem"]["properties"])
    assert client.get("/docs").status_code == 200


def test_a_quote_beyond_what_can_be_billed_is_422_not_500(client_any_db: TestClient) -> None:
    client = client_any_db
    cid = client.post("/v1/customers", json=CUSTOMER).json()["id"]
    big = {"sku": "BIG", "name": "Big", "kind": "service", "unit_price": "1000000000.00"}
    assert client.post("/v1/products", json={**big, "currency": "EUR"}).status_code == 201
    lines = [{"sku": "BIG", "quantity": 1_000_000}]
    r = client.post("/v1/quotes", json={"customer_id": cid, "lines": lines})
    assert "beyond what o2c can bill" in assert_problem(r, 422)["detail"]
    r = client.post("/v1/orders", json={"customer_id": cid, "lines": lines, "payment": "invoice"})
    assert_problem(r, 422)


def test_large_and_deeply_nested_bodies_are_refused_before_anything_else(
    client: TestClient,
) -> None:
    """No key needed to be refused: the API never holds more than 1 MiB of a body."""
    huge = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    r = client.post("/v1/customers", content=huge, headers={"Content-Type": "application/json"})
    assert_problem(r, 413)

    def streamed() -> Iterator[bytes]:  # no Content-Length: chunked
        for _ in range(40):
            yield b"x" * 65536

    r = client.post("/nope", content=streamed(), headers={"Authorization": "Bearer nobody"})
    assert_problem(r, 413)
    deep = b"[" * 100_000 + b'"\\u0000"' + b"]" * 100_000
    for body in (deep, deep.replace(b"\\u0000", b"x")):
        r = client.post("/v1/customers", content=body, headers={"Content-Type": "application/json"})
        assert assert_problem(r, 422)["type"].endswith("malformed_json")


def test_a_requests_log_lines_carry_the_process_and_customer_it_is_about(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.handler.addFilter(ContextFilter())
    erp = client.app.state.o2c.systems.erp  # type: ignore[attr-defined]
    order = {"process_id": "q2o-quo_logged", "customer_id": "cus_logged"}
    erp.save_document("order", "ord_logged", "cus_logged", order)
    with caplog.at_level(logging.WARNING):
        # Temporal is unreachable: each answer is a 503, logged with its ids.
        assert_problem(client.post("/v1/orders/ord_logged/cancel", json={"reason": "x"}), 503)
        assert_problem(client.post("/v1/quotes/quo_other/decline"), 503)
        assert_problem(client.post("/v1/processes/q2o-ord_third/retry"), 503)
    ids = [
        (getattr(r, "process_id", None), getattr(r, "customer_id", None))
        for r in caplog.records
        if r.name == "o2c.api"
    ]
    assert ids == [
        ("q2o-quo_logged", "cus_logged"),
        ("q2o-quo_other", "-"),
        ("q2o-ord_third", "-"),
    ]


def test_a_key_can_ask_what_it_may_do(client: TestClient) -> None:
    assert client.get("/v1/api-keys/me").json() == {"id": "admin", "role": "admin"}
    viewer = key(client, "viewer")
    me = client.get("/v1/api-keys/me", headers={"Authorization": f"Bearer {viewer}"})
    assert me.status_code == 200 and me.json()["role"] == "viewer"
    assert me.json()["id"].startswith("key_")
    assert_problem(client.get("/v1/api-keys/me", headers={"Authorization": "Bearer nope"}), 401)


def test_the_polled_reads_answer_what_their_response_model_would(client: TestClient) -> None:
    """GET of an order and of a quote answers the read model through one serialization;
    the bodies equal FastAPI's own for the response model (decimals, times, nested lists)."""
    erp = client.app.state.o2c.systems.erp  # type: ignore[attr-defined]
    cid = client.post("/v1/customers", json=CUSTOMER).json()["id"]
    client.post("/v1/products", json=PRODUCT).raise_for_status()
    lines = [LineRequest(sku="WIDGET-1", quantity=3)]
    priced = price_request(erp, cid, lines, Decimal("0.05"), Decimal("0.20"))
    created = datetime(2026, 11, 23, 9, 30, 15, 123456, tzinfo=UTC)
    inp = process_input(priced, quote_id="quo_polled", order_id="ord_polled", created_at=created)
    quote = initial_quote(inp)
    order = initial_order(inp, "card_on_file", created)
    for kind, model, doc in (("quotes", Quote, quote), ("orders", Order, order)):
        erp.save_document(kind[:-1], doc.id, cid, doc.model_dump(mode="json"))
        r = client.get(f"/v1/{kind}/{doc.id}")
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        expected = TypeAdapter(model).dump_python(doc, mode="json")
        assert r.json() == expected == jsonable_encoder(doc)
        assert r.json()["total"] == str(doc.total) and Decimal(r.json()["total"]) > 0


def test_an_orders_routes_do_not_answer_for_a_quote_id_nor_a_quotes_for_an_order_id(
    client: TestClient,
) -> None:
    """A quote's process holds its order: reached by the quote's id, the order routes
    answered 200 and cancelled the order. Each kind's routes take only its own ids (404
    before Temporal is asked: it is unreachable here)."""
    op = {"Authorization": f"Bearer {key(client, 'operator')}"}
    for method, path, body in (
        ("GET", "/v1/orders/quo_0123456789abcdef01234567", None),
        ("POST", "/v1/orders/quo_0123456789abcdef01234567/cancel", {"reason": "x"}),
        ("POST", "/v1/orders/quo_0123456789abcdef01234567/release", None),
        ("GET", "/v1/quotes/ord_0123456789abcdef01234567", None),
        ("POST", "/v1/quotes/ord_0123456789abcdef01234567/accept", {"payment": "invoice"}),
        ("POST", "/v1/quotes/ord_0123456789abcdef01234567/approve", None),
    ):
        r = client.request(method, path, json=body, headers=op)
        assert assert_problem(r, 404)["detail"].startswith(("order", "quote")), path


def test_every_invalid_input_answer_says_where_the_input_was(client: TestClient) -> None:
    """API.md: invalid input carries ``errors: [{loc, msg}]`` — input refused by a rule
    (past the schema) as well as input the schema refused."""
    yen = {**CUSTOMER, "currency": "JPY", "credit_limit": "1000.5"}
    body = assert_problem(client.post("/v1/customers", json=yen), 422)
    assert body["errors"] == [{"loc": ["body"], "msg": body["detail"]}]
    body = assert_problem(client.get("/v1/customers", params={"cursor": "zzzz"}), 422)
    assert body["errors"] == [{"loc": ["query", "cursor"], "msg": "invalid cursor"}]
    long_key = {"Idempotency-Key": "k" * 300}
    body = assert_problem(client.post("/v1/customers", json=CUSTOMER, headers=long_key), 422)
    assert body["errors"][0]["loc"] == ["header", "Idempotency-Key"]
    body = assert_problem(client.post("/v1/customers", json={**CUSTOMER, "credit_limit": 1.5}), 422)
    assert body["errors"][0]["loc"] == ["body", "credit_limit"]


def test_a_process_filter_that_could_break_the_query_is_located_in_the_query() -> None:
    with pytest.raises(InvalidInput) as refused:
        visibility_query(None, None, "a'b")
    assert refused.value.loc == ("query", "customer_id")
    assert visibility_query("quote_to_order", "completed", "cus_1").endswith("= 'cus_1'")
