"""The console in headless Chromium against a real API with one process needing attention.

The API is the real app over a temp database; its Temporal client is a small stand-in
that answers the process list, the process query and records the operator Updates, so the
test drives exactly the HTTP the console uses.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import Dialog, Page, sync_playwright
from temporalio.service import RPCError, RPCStatusCode

from api.app import create_app
from api.deps import TemporalProvider
from settings import Settings
from systems.registry import build_systems
from workflows.contracts.common import FailedStep, OperatorAck, ProcessView, Step
from workflows.contracts.quote_to_order import Order
from workflows.operable import SA_ATTENTION_KEY, SA_CUSTOMER_KEY, SA_STATUS_KEY, SA_TYPE_KEY

pytestmark = pytest.mark.slow
KEY = "o2c_admin_browser_" + "b" * 24
ORDER = "ord_browser"
PID = f"q2o-{ORDER}"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class _Info:
    id = PID
    start_time = NOW
    typed_search_attributes: dict[Any, Any] = {
        SA_TYPE_KEY: "quote_to_order",
        SA_STATUS_KEY: "needs_attention",
        SA_ATTENTION_KEY: True,
        SA_CUSTOMER_KEY: "cus_1",
    }


class _NewerQuote(_Info):
    """A process started after ``PID`` that needs no one."""

    id = "q2o-quo_newer"
    typed_search_attributes: dict[Any, Any] = {
        **_Info.typed_search_attributes,
        SA_STATUS_KEY: "open",
        SA_ATTENTION_KEY: False,
    }


class _Iter:
    """Visibility: the one process, or none for another customer; a list for no customer
    in particular takes ``slow_list_seconds`` to answer."""

    def __init__(self, query: str, client: _Client) -> None:
        self.query, self.client = query, client
        self.current_page: list[_Info] = []
        self.next_page_token = None

    async def fetch_next_page(self) -> None:
        if "cus_nobody" in self.query:
            return
        if "O2cCustomerId" not in self.query:
            await asyncio.sleep(self.client.slow_list_seconds)
        newer = [_NewerQuote()] if self.client.newer_quote and "true" not in self.query else []
        self.current_page = [*newer, _Info()]


class _Handle:
    """The process ``PID`` (needing attention until an operator acts, then running on);
    any other id is a process Temporal does not know."""

    def __init__(self, pid: str, client: _Client) -> None:
        self.pid, self.client = pid, client

    def _known(self) -> None:
        if self.pid != PID:
            raise RPCError("workflow not found", RPCStatusCode.NOT_FOUND, b"")

    async def query(self, name: str, result_type: Any = None) -> Any:
        self._known()
        if name == "order":
            return self.client.order()
        if self.client.held:
            return ProcessView(
                process_id=PID,
                type="quote_to_order",
                status="credit_hold",
                customer_id="cus_1",
                steps=[
                    Step(name="check_credit", status="done", attempts=1, started_at=NOW),
                ],
                refs={"order_id": ORDER},
            )
        waiting = self.client.needs_attention
        charge = Step(
            name="charge_invoice:inv_1",
            status="failed" if waiting else "running",
            attempts=5 * (len(self.client.calls) + 1) if waiting else 5,
            error="system_unavailable: payments down" if waiting else None,
            started_at=NOW,
        )
        return ProcessView(
            process_id=PID,
            type="quote_to_order",
            status="needs_attention" if waiting else "confirmed",
            customer_id="cus_1",
            refs={"order_id": ORDER},
            steps=[
                Step(
                    name="check_credit", status="done", attempts=1, started_at=NOW, finished_at=NOW
                ),
                charge,
            ],
            failed_step=FailedStep(
                name="charge_invoice:inv_1", error="payments down", attempts=5, failed_at=NOW
            )
            if waiting
            else None,
        )

    async def describe(self) -> Any:
        self._known()
        return type("D", (), {"history_length": 42})()

    async def execute_update(
        self,
        name: str,
        *_: Any,
        args: Sequence[Any] = (),
        id: str | None = None,
        result_type: Any = None,
    ) -> Any:
        self._known()
        await asyncio.sleep(self.client.update_seconds)
        self.client.calls.append(name)
        if name == "release":
            self.client.held = False
            return self.client.order()
        self.client.needs_attention = False
        return OperatorAck(step="charge_invoice:inv_1", action=name, status="confirmed")


class _Client:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.needs_attention = True
        self.held = False  # the order waits in a credit hold instead
        self.update_seconds = 0.0
        self.slow_list_seconds = 0.0
        self.newer_quote = False  # visibility lists a newer open quote first

    def order(self) -> Order:
        return Order(
            id=ORDER,
            process_id=PID,
            customer_id="cus_1",
            status="credit_hold" if self.held else "confirmed",
            lines=[],
            subtotal=Decimal("500.00"),
            discount=Decimal("50.00"),
            tax=Decimal("85.50"),
            total=Decimal("535.50"),
            quote_id="quo_browser",
            currency="EUR",
            payment="invoice",
            steps=[Step(name="check_credit", status="done", attempts=1, started_at=NOW)],
            shipments=[],
            subscription_ids=[],
            service_orders=[],
            invoice_ids=[] if self.held else ["inv_1"],
            hold_reason="open AR 0.00 + order 535.50 exceeds credit limit 100.00"
            if self.held
            else None,
            created_at=NOW,
        )

    def list_workflows(self, query: str, **_: Any) -> _Iter:
        return _Iter(query, self)

    def get_workflow_handle(self, pid: str) -> _Handle:
        return _Handle(pid, self)


class _Provider(TemporalProvider):
    def __init__(self, client: _Client) -> None:
        super().__init__("unused:1", "default")
        self.client = client

    async def get(self) -> Any:
        return self.client


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, _Client]]:
    settings = Settings(
        environment="test", data_dir=tmp_path, admin_key=KEY, smtp_url="smtp://127.0.0.1:1"
    )
    client = _Client()
    app = create_app(settings, build_systems(settings), _Provider(client))
    port = _port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", client
    server.should_exit = True
    thread.join(timeout=10)


def _post(base: str, path: str, body: dict[str, Any]) -> Any:
    """Set the scene through the API, as the admin."""
    request = urllib.request.Request(
        f"{base}{path}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as answer:
        return json.load(answer)


def _sign_in(page: Page, base: str) -> None:
    page.goto(f"{base}/console")
    page.fill("#key", KEY)
    page.click("#signin-form button[type=submit]")


@contextmanager
def _browser() -> Iterator[Page]:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()


def _open_failed_process(page: Page, base: str) -> None:
    _sign_in(page, base)
    row = page.locator(f"tr[data-id='{PID}']")
    row.wait_for()
    assert "needs_attention" in row.inner_text()
    row.click()
    page.locator(".failed-step").wait_for()


def test_operator_sees_the_failed_step_and_retries_it(served: tuple[str, _Client]) -> None:
    base, client = served
    client.update_seconds = 1.0  # long enough to see the action under way
    with _browser() as page:
        _open_failed_process(page, base)
        assert "charge_invoice:inv_1" in page.locator(".failed-step h3").inner_text()
        assert page.locator("#detail tbody tr").count() == 2
        page.fill("#skip-result", "{not json")
        page.once("dialog", lambda d: d.accept())
        page.click("#skip")
        assert page.locator("#message").inner_text() == "the skip result is not valid JSON"
        assert client.calls == []
        questions: list[str] = []

        def answer(dialog: Dialog) -> None:
            questions.append(dialog.message)
            dialog.accept()

        page.once("dialog", answer)
        page.click("#retry")
        # A locator waits without evaluating script text (the console's CSP forbids eval).
        page.locator("#message", has_text="under way").wait_for()
        assert page.locator("#retry").is_disabled() and page.locator("#abort").is_disabled()
        page.locator("#message", has_text="retry charge_invoice:inv_1").wait_for()
        assert client.calls == ["retry"]
        assert questions == [f"Retry step charge_invoice:inv_1 of {PID}?"]
        # The answer reloads the process: the step runs again, nothing waits for an operator.
        page.locator(".failed-step").wait_for(state="detached")
        assert "confirmed" in page.locator("#detail").inner_text()
        page.screenshot(path=str(Path("/tmp/o2c-console.png")))


def test_the_open_process_refreshes_when_its_step_fails_again(
    served: tuple[str, _Client],
) -> None:
    base, client = served
    with _browser() as page:
        _open_failed_process(page, base)
        page.once("dialog", lambda d: d.accept())
        page.click("#retry")
        page.locator(".failed-step").wait_for(state="detached")
        client.needs_attention = True  # the retried step failed again
        page.locator(".failed-step").wait_for(timeout=15_000)  # auto-refresh, every 5 s
        assert "10" in page.locator("#detail tbody tr").nth(1).inner_text()  # its attempts


def test_a_process_that_cannot_be_shown_leaves_nothing_of_the_previous_one(
    served: tuple[str, _Client],
) -> None:
    base, client = served
    with _browser() as page:
        _open_failed_process(page, base)
        page.goto(f"{base}/console#/processes/q2o-ord_nosuch")
        page.locator("#message", has_text="Not found").wait_for()
        assert page.locator("#retry").count() == 0
        assert PID not in page.locator("#detail").inner_text()
        assert client.calls == []


def test_an_operator_releases_a_credit_hold_from_the_process(
    served: tuple[str, _Client],
) -> None:
    base, client = served
    client.held = True
    with _browser() as page:
        _sign_in(page, base)
        page.goto(f"{base}/console#/processes/{PID}")
        page.locator("#release").wait_for()
        assert "exceeds credit limit 100.00" in page.locator("#detail").inner_text()
        page.fill("#release-note", "vip customer")
        page.once("dialog", lambda d: d.accept())
        page.click("#release")
        page.locator("#message", has_text=f"released order {ORDER}").wait_for()
        assert client.calls == ["release"]
        page.locator("#release").wait_for(state="detached")  # reloaded: no hold any more
        page.click(f"a[href='#/lookup/{ORDER}']")
        page.locator("#total", has_text="535.50").wait_for()
        # Subtotal − discount + tax = total, all on the page; the order links to its quote.
        assert page.locator("#discount").inner_text() == "−50.00"
        assert page.locator("#lookup-result a[href='#/lookup/quo_browser']").count() == 1
        # The order's own timeline, and its invoice one click away.
        assert "check_credit" in page.locator("#lookup-result tbody.static").last.inner_text()
        assert page.locator("#lookup-result a[href='#/lookup/inv_1']").count() == 1


def test_a_viewer_sees_what_waits_but_is_offered_no_action(served: tuple[str, _Client]) -> None:
    base, client = served
    viewer = _post(base, "/v1/api-keys", {"name": "watcher", "role": "viewer"})["key"]
    with _browser() as page:
        page.goto(f"{base}/console")
        page.fill("#key", viewer)
        page.click("#signin-form button[type=submit]")
        page.locator(f"tr[data-id='{PID}']").click()
        page.locator(".failed-step", has_text="needs the operator role").wait_for()
        assert "charge_invoice:inv_1" in page.locator(".failed-step h3").inner_text()
        assert page.locator("#detail button").count() == 0


def test_a_late_answer_to_an_older_filter_does_not_replace_the_newer_one(
    served: tuple[str, _Client],
) -> None:
    base, client = served
    with _browser() as page:
        _sign_in(page, base)
        page.locator(f"tr[data-id='{PID}']").wait_for()
        client.slow_list_seconds = 2.0
        page.click("#filters button[type=submit]")  # all processes: slow to answer
        page.fill("#filters input[name=customer_id]", "cus_nobody")
        page.click("#filters button[type=submit]")  # the newer question
        page.locator("tr.empty").wait_for()
        page.wait_for_timeout(3000)  # the older answer arrives meanwhile
        assert page.locator("tr.empty").count() == 1
        assert page.locator(f"tr[data-id='{PID}']").count() == 0


def test_customers_show_by_name_as_text_whatever_the_name(
    served: tuple[str, _Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, _ = served
    name = "<img src=x onerror=alert(1)> Evil & Co"
    body = {"name": name, "email": "evil@example.com", "currency": "EUR", "credit_limit": "10"}
    cid = _post(base, "/v1/customers", body)["id"]
    monkeypatch.setitem(_Info.typed_search_attributes, SA_CUSTOMER_KEY, cid)
    with _browser() as page:
        dialogs: list[str] = []

        def refuse(dialog: Dialog) -> None:  # an alert would mean the name ran as script
            dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", refuse)
        _sign_in(page, base)
        cell = page.locator(f"tr[data-id='{PID}'] span.customer", has_text="Evil & Co")
        cell.wait_for()
        assert cell.inner_text() == name and cell.get_attribute("title") == cid
        assert page.locator("img[src=x]").count() == 0 and dialogs == []


def test_the_api_docs_render_from_local_assets_alone(served: tuple[str, _Client]) -> None:
    """``/docs`` loads nothing from outside the API (no CDN is reachable from machines
    that see only package registries) and shows the operations."""
    base, _ = served
    with _browser() as page:
        outside: list[str] = []
        page.on(
            "request",
            lambda r: (
                outside.append(r.url)
                if r.url.startswith(("http:", "https:")) and not r.url.startswith(base)
                else None
            ),
        )
        page.goto(f"{base}/docs")
        page.locator(".opblock").first.wait_for()
        operations = page.locator(".opblock").all_inner_texts()
        assert len(operations) > 30 and any("/v1/orders" in t for t in operations)
        assert outside == []


def test_the_process_that_needs_attention_comes_first(served: tuple[str, _Client]) -> None:
    base, client = served
    client.newer_quote = True
    with _browser() as page:
        _sign_in(page, base)
        page.locator("tr[data-id='q2o-quo_newer']").wait_for()
        ids = page.locator("#rows tr").evaluate_all("rows => rows.map(r => r.dataset.id)")
        assert ids == [PID, "q2o-quo_newer"]
