"""``o2c worker`` stops gracefully: on SIGTERM (a deploy, ``make run``'s Ctrl-C) it polls no
more, finishes the activity under way instead of abandoning it to a timeout, exits 0, and
the next worker carries the process on from there. Killed outright in the middle of a
step, it loses nothing either: the next worker runs the step again, and nothing is
invoiced, charged or e-mailed twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import EventType, PendingActivityState, PendingWorkflowTaskState
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from api.app import app_from_settings
from settings import Settings
from systems.notify.sink import read_index, start_sink
from systems.registry import Systems, build_systems
from tests.factories import add_card, catalog, customer
from tests.integration.conftest import (
    ADMIN_KEY,
    free_port,
    integration_settings,
    service_order,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings(dev_env: WorkflowEnvironment, tmp_path: Path) -> Iterator[Settings]:
    sink_port = free_port()
    sink = start_sink(tmp_path, sink_port)
    yield integration_settings(
        dev_env,
        tmp_path,
        "shutdown",
        sandbox=True,
        smtp_url=f"smtp://127.0.0.1:{sink_port}",
        worker_shutdown_seconds=10,
    )
    sink.stop()


def _start_worker(settings: Settings) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "O2C_ENVIRONMENT": "test",
        "O2C_DATA_DIR": str(settings.data_dir),
        "O2C_DATABASE_URL": settings.db_url,
        "O2C_TEMPORAL_ADDRESS": settings.temporal_target,
        "O2C_TASK_QUEUE": settings.task_queue,
        "O2C_ADMIN_KEY": ADMIN_KEY,
        "O2C_SANDBOX": "1",
        "O2C_SMTP_URL": settings.smtp_target,
        "O2C_WORKER_SHUTDOWN_SECONDS": str(settings.worker_shutdown_seconds),
    }
    with open(settings.data_dir / "worker.log", "ab") as log:  # the child keeps its own copy
        return subprocess.Popen(
            [sys.executable, "-m", "cli", "worker"], cwd=ROOT, env=env, stdout=log, stderr=log
        )


def _stop(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, float]:
    """SIGTERM the worker: (exit code, seconds it took to stop)."""
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout), time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@dataclass
class Shop:
    """A customer with a card on file, the API in-process, and the worker processes a test
    starts (killed at the end if still running)."""

    settings: Settings
    systems: Systems
    customer_id: str
    api: httpx.AsyncClient
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_worker(self) -> subprocess.Popen[bytes]:
        self.workers.append(_start_worker(self.settings))
        return self.workers[-1]

    async def place_order(self, client: Client) -> tuple[str, WorkflowHandle[Any, Any]]:
        """A service-only card order: (order id, its process)."""
        r = await self.api.post("/v1/orders", json=service_order(self.customer_id))
        assert r.status_code == 201, r.text
        return r.json()["id"], client.get_workflow_handle(r.json()["process_id"])

    async def order(self, order_id: str) -> dict[str, Any]:
        body: dict[str, Any] = (await self.api.get(f"/v1/orders/{order_id}")).json()
        return body

    async def until_completed(self, order_id: str) -> dict[str, Any]:
        async def completed() -> bool:
            return bool((await self.order(order_id))["status"] == "completed")

        await _until(completed, f"order {order_id} to complete")
        return await self.order(order_id)


@pytest_asyncio.fixture
async def shop(settings: Settings) -> AsyncIterator[Shop]:
    systems = build_systems(settings)
    catalog(systems.erp)
    cid = customer(systems.erp).id
    await add_card(systems.erp, systems.gateway, cid)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app_from_settings(settings)),
        base_url="http://o2c",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    ) as api:
        shop = Shop(settings, systems, cid, api)
        try:
            yield shop
        finally:
            for proc in shop.workers:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()


async def test_sigterm_finishes_the_step_under_way_and_the_next_worker_goes_on(
    dev_env: WorkflowEnvironment, shop: Shop
) -> None:
    shop.systems.erp.set_fault("notifications", "slow")  # the e-mail takes 2 s: SIGTERM lands in it
    worker = shop.start_worker()
    order_id, handle = await shop.place_order(dev_env.client)

    async def emailing() -> bool:
        pending = (await handle.describe()).raw_description.pending_activities
        return any(
            p.activity_type.name == "notify.email_customer"
            and p.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
            for p in pending
        )

    await _until(emailing, "the e-mail step to start")
    code, took = await asyncio.to_thread(_stop, worker, 30)
    assert code == 0, (shop.settings.data_dir / "worker.log").read_text()
    assert took < shop.settings.worker_shutdown_seconds  # the 2 s step, not the grace period
    events = [e.event_type async for e in handle.fetch_history_events()]
    # The e-mail, finished by the stopping worker.
    assert events.count(EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED) == 1
    mail = shop.settings.data_dir
    assert [m["subject"] for m in read_index(mail)] == [f"Order {order_id} confirmed"]
    assert (await shop.order(order_id))["status"] == "confirmed"  # the charge waits

    shop.systems.erp.set_fault("notifications", "ok")
    worker = shop.start_worker()
    await shop.until_completed(order_id)
    assert len(read_index(mail)) == 1  # the e-mail was not sent again
    assert (await asyncio.to_thread(_stop, worker, 30))[0] == 0


async def test_a_worker_killed_in_the_middle_of_a_step_loses_and_doubles_nothing(
    dev_env: WorkflowEnvironment, shop: Shop
) -> None:
    shop.systems.erp.set_fault("erp", "slow")  # every ERP step takes 2 s: the kill lands in one
    worker = shop.start_worker()
    order_id, handle = await shop.place_order(dev_env.client)

    async def working() -> bool:  # its first task taken: the sales order is under way
        task = (await handle.describe()).raw_description.pending_workflow_task
        return bool(task.state == PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_STARTED)

    await _until(working, "the worker to take the process's first task")
    await asyncio.sleep(0.5)
    worker.kill()  # no goodbye: a crash, an OOM kill, a pulled plug
    assert await asyncio.to_thread(worker.wait, 10) == -signal.SIGKILL
    history = [e.event_type async for e in handle.fetch_history_events()]
    assert EventType.EVENT_TYPE_MARKER_RECORDED not in history  # the step was under way

    shop.systems.erp.set_fault("erp", "ok")
    worker = shop.start_worker()  # picks the process up once its task times out
    order = await shop.until_completed(order_id)
    assert [(s["name"].split(":")[0], s["status"]) for s in order["steps"]] == [
        ("check_credit", "done"),
        ("create_sales_order", "done"),
        ("email", "done"),
        ("issue_invoice", "done"),
        ("charge_invoice", "done"),
    ]
    invoices = shop.systems.erp.list_invoices(shop.customer_id, None, 10, None).data
    assert [(i.id, i.status) for i in invoices] == [(order["invoice_ids"][0], "paid")]
    key = f"{handle.id}:charge:{invoices[0].id}"
    assert await shop.systems.gateway.charges_for_key(key) == 1
    assert len(read_index(shop.settings.data_dir)) == 1
    assert (await asyncio.to_thread(_stop, worker, 30))[0] == 0
