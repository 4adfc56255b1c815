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
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.api.enums.v1 import EventType, PendingActivityState, PendingWorkflowTaskState
from temporalio.testing import WorkflowEnvironment

from api.app import app_from_settings
from settings import Settings
from systems.notify.sink import read_index, start_sink
from systems.registry import build_systems
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


async def _until(check: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_sigterm_finishes_the_step_under_way_and_the_next_worker_goes_on(
    dev_env: WorkflowEnvironment, settings: Settings
) -> None:
    systems = build_systems(settings)
    catalog(systems.erp)
    cid = customer(systems.erp).id
    await add_card(systems.erp, systems.gateway, cid)
    systems.erp.set_fault("notifications", "slow")  # the e-mail takes 2 s: SIGTERM lands in it
    api = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app_from_settings(settings)),
        base_url="http://o2c",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )
    worker = _start_worker(settings)
    try:
        r = await api.post("/v1/orders", json=service_order(cid))
        assert r.status_code == 201, r.text
        order_id, process_id = r.json()["id"], r.json()["process_id"]
        handle = dev_env.client.get_workflow_handle(process_id)

        async def emailing() -> bool:
            pending = (await handle.describe()).raw_description.pending_activities
            return any(
                p.activity_type.name == "notify.email_customer"
                and p.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
                for p in pending
            )

        await _until(emailing, "the e-mail step to start")
        code, took = await asyncio.to_thread(_stop, worker, 30)
        assert code == 0, (settings.data_dir / "worker.log").read_text()
        assert took < settings.worker_shutdown_seconds  # the 2 s step, not the grace period
        events = [e async for e in handle.fetch_history_events()]
        completed = [
            e for e in events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
        ]
        assert len(completed) == 1  # the e-mail, finished by the stopping worker
        assert [m["subject"] for m in read_index(settings.data_dir)] == [
            f"Order {order_id} confirmed"
        ]
        order = (await api.get(f"/v1/orders/{order_id}")).json()
        assert order["status"] == "confirmed"  # the charge waits for a worker

        systems.erp.set_fault("notifications", "ok")
        worker = _start_worker(settings)

        async def completed_order() -> bool:
            body = (await api.get(f"/v1/orders/{order_id}")).json()
            return bool(body["status"] == "completed")

        await _until(completed_order, "the order to complete on the next worker")
        assert len(read_index(settings.data_dir)) == 1  # the e-mail was not sent again
        code, _ = await asyncio.to_thread(_stop, worker, 30)
        assert code == 0
    finally:
        if worker.poll() is None:
            worker.kill()
        await api.aclose()


async def test_a_worker_killed_in_the_middle_of_a_step_loses_and_doubles_nothing(
    dev_env: WorkflowEnvironment, settings: Settings
) -> None:
    systems = build_systems(settings)
    catalog(systems.erp)
    cid = customer(systems.erp).id
    await add_card(systems.erp, systems.gateway, cid)
    systems.erp.set_fault("erp", "slow")  # every ERP step takes 2 s: the kill lands in one
    api = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app_from_settings(settings)),
        base_url="http://o2c",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )
    worker = _start_worker(settings)
    try:
        r = await api.post("/v1/orders", json=service_order(cid))
        assert r.status_code == 201, r.text
        order_id, process_id = r.json()["id"], r.json()["process_id"]
        handle = dev_env.client.get_workflow_handle(process_id)

        async def working() -> bool:  # its first task taken: the sales order is under way
            task = (await handle.describe()).raw_description.pending_workflow_task
            return bool(task.state == PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_STARTED)

        await _until(working, "the worker to take the process's first task")
        await asyncio.sleep(0.5)
        worker.kill()  # no goodbye: a crash, an OOM kill, a pulled plug
        assert await asyncio.to_thread(worker.wait, 10) == -signal.SIGKILL
        history = [e.event_type async for e in handle.fetch_history_events()]
        assert EventType.EVENT_TYPE_MARKER_RECORDED not in history  # the step was under way

        systems.erp.set_fault("erp", "ok")
        worker = _start_worker(settings)  # picks the process up once its task times out

        async def completed() -> bool:
            body = (await api.get(f"/v1/orders/{order_id}")).json()
            return bool(body["status"] == "completed")

        await _until(completed, "the order to complete after the crash")
        order = (await api.get(f"/v1/orders/{order_id}")).json()
        assert [(s["name"].split(":")[0], s["status"]) for s in order["steps"]] == [
            ("check_credit", "done"),
            ("create_sales_order", "done"),
            ("email", "done"),
            ("issue_invoice", "done"),
            ("charge_invoice", "done"),
        ]
        invoices = systems.erp.list_invoices(cid, None, 10, None).data
        assert [(i.id, i.status) for i in invoices] == [(order["invoice_ids"][0], "paid")]
        key = f"{process_id}:charge:{invoices[0].id}"
        assert await systems.gateway.charges_for_key(key) == 1
        assert len(read_index(settings.data_dir)) == 1
        code, _ = await asyncio.to_thread(_stop, worker, 30)
        assert code == 0
    finally:
        if worker.poll() is None:
            worker.kill()
        await api.aclose()
