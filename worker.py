"""Composition root of the o2c worker: adapters → activities → one Temporal worker.

Tuned as TEMPORAL-NOTES.md measured on a 2-core machine: a sticky cache at least as large
as the workflows in flight, ≥ 100 activity slots, domain and contract modules passed
through the sandbox, and synchronous ERP activities on a thread pool.
"""

from __future__ import annotations

import asyncio
import compileall
import logging
import os
import signal
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.erp import ErpActivities
from activities.faults import Faults
from activities.notifications import NotifyActivities
from activities.payments import PaymentActivities
from settings import Settings
from systems.registry import Systems
from workflows.quote_to_order import QuoteToOrderWorkflow

log = logging.getLogger("o2c.worker")

WORKFLOWS: Sequence[type] = (QuoteToOrderWorkflow,)
# Pure modules the sandbox may share instead of re-importing them for every run (+30 %).
PASSTHROUGH = ("domain", "workflows.contracts", "pydantic", "pydantic_core", "annotated_types")


def sandbox_runner() -> SandboxedWorkflowRunner:
    """The workflow sandbox with o2c's pure modules passed through (workers and replays)."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH)
    )


def precompile_workflows() -> None:
    """Write the workflow modules' bytecode if it is missing or stale.

    The sandbox re-imports a workflow's modules for every run it starts; without bytecode
    (``PYTHONDONTWRITEBYTECODE``, a read-only install) each start compiles their source
    again, an eighth of the worker's CPU under load. Unwritable folders are left as they are.
    """
    import workflows

    compileall.compile_dir(Path(workflows.__file__).parent, quiet=2)


def build_activities(systems: Systems, faults: Faults) -> list[Any]:
    """Every activity callable, bound to its adapters."""
    erp = ErpActivities(systems.erp, faults)
    pay = PaymentActivities(systems.gateway, systems.erp, faults)
    notify = NotifyActivities(systems.notifier, systems.erp, faults)
    return [
        erp.customer_snapshot,
        erp.commit_credit,
        erp.release_credit,
        erp.reserve_stock,
        erp.add_backorder,
        erp.release_stock,
        erp.commit_stock,
        erp.create_sales_order,
        erp.cancel_sales_order,
        erp.issue_invoice,
        erp.reverse_invoice,
        erp.record_refund_by_hand,
        erp.save_document,
        pay.charge_invoice,
        pay.refund_invoice,
        pay.return_unapplied_charge,
        notify.email_customer,
    ]


def build_worker(
    client: Client,
    systems: Systems,
    settings: Settings,
    *,
    task_queue: str | None = None,
    executor: ThreadPoolExecutor | None = None,
    faults: Faults | None = None,
) -> Worker:
    """A worker for every o2c workflow and activity on ``task_queue``."""
    precompile_workflows()
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=list(WORKFLOWS),
        activities=build_activities(systems, faults or Faults(systems.erp, settings.sandbox)),
        activity_executor=executor
        or ThreadPoolExecutor(max_workers=settings.worker_max_concurrent_activities),
        workflow_runner=sandbox_runner(),
        max_cached_workflows=settings.worker_max_cached_workflows,
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        max_concurrent_local_activities=settings.worker_max_concurrent_local_activities,
        graceful_shutdown_timeout=timedelta(seconds=settings.worker_shutdown_seconds),
    )


def stop_on_signals() -> asyncio.Event:
    """An event set by the first SIGINT or SIGTERM; a second one exits at once (an
    operator who does not want to wait for the steps under way)."""
    stop = asyncio.Event()

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set():
            log.warning("%s again: exiting without waiting", sig.name)
            os._exit(128 + sig.value)
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    return stop


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Connect, register search attributes and run (the ``o2c worker``) until ``stop`` is
    set (by default: on SIGINT or SIGTERM, see ``stop_on_signals``) or the worker fails.
    Stopping polls no more, lets the activities under way finish for
    ``O2C_WORKER_SHUTDOWN_SECONDS`` (then cancels them: retried elsewhere) and says
    goodbye to the SMTP relay; a stop while still connecting just ends."""
    from clients import prepare_namespace, temporal_access, wait_for_temporal
    from systems.registry import build_systems

    stop = stop or stop_on_signals()
    stopping = asyncio.create_task(stop.wait())

    async def connect() -> Client:
        client = await wait_for_temporal(
            settings.temporal_target,
            settings.temporal_namespace,
            tracing=settings.tracing,
            access=temporal_access(settings),
        )
        await prepare_namespace(client, settings.temporal_namespace, settings.temporal_target)
        return client

    connecting = asyncio.create_task(connect())
    try:
        await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not connecting.done():
            connecting.cancel()
            log.info("stopped before connecting to %s", settings.temporal_target)
            return
        client = connecting.result()
        systems = build_systems(settings)
        worker = build_worker(client, systems, settings)
        log.info(
            "worker polling task queue %s on %s", settings.task_queue, settings.temporal_target
        )
        running = asyncio.create_task(worker.run())
        try:
            await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not running.done():
                log.info(
                    "stopping: finishing the activities under way (up to %s s)",
                    settings.worker_shutdown_seconds,
                )
                await worker.shutdown()
            await running  # a worker's fatal error ends the process with it
        finally:
            await asyncio.to_thread(systems.notifier.close)  # QUITs: not on the event loop
    finally:
        stopping.cancel()


if __name__ == "__main__":
    from cli import run_async

    run_async(run_worker(Settings()))
