"""Benchmark: orders per second through the API, end to end, against a bare workflow.

Starts the whole stack with ``o2c dev`` in a temporary data folder on free ports, seeds a
customer with a card on file and a service product, then places service-only orders
(``card_on_file``) through ``POST /v1/orders`` with a fixed number in flight, polling
``GET /v1/orders/{id}`` until each is ``completed`` (with a lean client, so the load
generator takes little of the CPU it shares with the stack). It reports orders/s and the
p50/p99 placed → completed latency, then the same server's rate for as many bare
workflows — as many no-op regular activities as the order has steps — and for the order's
own Temporal footprint with no-op steps (``OrderShapeWorkflow``: the ceiling of the ratio).
Each round starts with another of the three, so a shared machine's drift hits them alike;
the median ratio orders/bare is the result. Each phase also prints the CPU time it cost
per item in every process of the stack (Linux).

    python -m bench.orders [--orders 200] [--concurrency 20] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from opentelemetry import trace
from temporalio.client import Client
from temporalio.common import TypedSearchAttributes
from temporalio.contrib.opentelemetry import create_tracer_provider
from temporalio.worker import Worker

from bench import cpu
from bench.bare import (
    BareWorkflow,
    LocalBareWorkflow,
    OrderShapeLocalWorkflow,
    OrderShapeWorkflow,
    noop,
)
from bench.loadclient import LoadClient
from cli import run_async
from clients import connect_temporal
from settings import Settings
from workflows.operable import start_attributes

# A client polling four times a second: latencies are measured to that resolution.
POLL_SECONDS = 0.25
# The order's timeline: check_credit, create_sales_order, email, issue_invoice,
# charge_invoice.
ORDER_STEPS = 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_stack(data_dir: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    o2c = Path(sys.executable).parent / "o2c"
    log = open(data_dir / "dev.log", "wb")  # noqa: SIM115 - lives as long as the stack
    return subprocess.Popen([str(o2c), "dev"], env=env, stdout=log, stderr=subprocess.STDOUT)


async def wait_ready(base: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base) as http:
        while time.monotonic() < deadline:
            try:
                if (await http.get("/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
    raise RuntimeError("the stack did not become ready")


async def seed(http: httpx.AsyncClient) -> str:
    sku = f"BENCH-{uuid.uuid4().hex[:8]}"
    r = await http.post(
        "/v1/products",
        json={
            "sku": sku,
            "name": "Bench service",
            "kind": "service",
            "unit_price": "10.00",
            "currency": "EUR",
        },
    )
    r.raise_for_status()
    r = await http.post(
        "/v1/customers",
        json={
            "name": "Bench Co",
            "email": "bench@example.com",
            "currency": "EUR",
            "credit_limit": "100000000.00",
            "tax_rate": "0.19",
        },
    )
    r.raise_for_status()
    cid = r.json()["id"]
    r = await http.post(
        f"/v1/customers/{cid}/payment-methods",
        json={"card_number": "4242424242424242", "exp_month": 12, "exp_year": 2035, "cvc": "123"},
    )
    r.raise_for_status()
    return f"{cid}:{sku}"


async def one_order(http: LoadClient, cid: str, sku: str) -> tuple[float, float]:
    """Place one order and poll it until completed: (client latency, process latency).

    The process latency is the order's own created_at → completed_at, free of polling."""
    start = time.perf_counter()
    status, order = await http.request(
        "POST",
        "/v1/orders",
        {"customer_id": cid, "lines": [{"sku": sku, "quantity": 1}], "payment": "card_on_file"},
    )
    if status != 201:
        raise RuntimeError(f"POST /v1/orders answered {status}: {order}")
    oid = order["id"]
    while True:
        await asyncio.sleep(POLL_SECONDS)
        status, order = await http.request("GET", f"/v1/orders/{oid}")
        order = order if status == 200 else {}
        if order.get("status") == "completed":
            took = datetime.fromisoformat(order["completed_at"]) - datetime.fromisoformat(
                order["created_at"]
            )
            return time.perf_counter() - start, took.total_seconds()
        if order.get("status") in ("needs_attention", "cancelled"):
            raise RuntimeError(f"order {oid} ended {order['status']}")


async def run_orders(
    http: LoadClient, cid: str, sku: str, n: int, concurrency: int
) -> tuple[float, list[float], list[float]]:
    sem = asyncio.Semaphore(concurrency)

    async def bounded() -> tuple[float, float]:
        async with sem:
            return await one_order(http, cid, sku)

    start = time.perf_counter()
    results = await asyncio.gather(*(bounded() for _ in range(n)))
    elapsed = time.perf_counter() - start
    return elapsed, [client for client, _ in results], [own for _, own in results]


async def run_workflows(
    client: Client,
    queue: str,
    n: int,
    concurrency: int,
    run: Callable[[Any, int], Awaitable[int]],
    search_attributes: TypedSearchAttributes = TypedSearchAttributes.empty,
) -> tuple[float, list[float]]:
    """Run ``n`` workflows of ``run`` to completion: (elapsed, latencies)."""
    sem = asyncio.Semaphore(concurrency)

    async def one() -> float:
        async with sem:
            t = time.perf_counter()
            await client.execute_workflow(
                run,
                ORDER_STEPS,
                id=f"bench-{uuid.uuid4()}",
                task_queue=queue,
                search_attributes=search_attributes,
            )
            return time.perf_counter() - t

    start = time.perf_counter()
    latencies = await asyncio.gather(*(one() for _ in range(n)))
    return time.perf_counter() - start, list(latencies)


def baseline_worker(client: Client, queue: str) -> Worker:
    """The worker of the baselines, tuned as the stack's (cache and activity slots)."""
    return Worker(
        client,
        task_queue=queue,
        workflows=[BareWorkflow, OrderShapeWorkflow, LocalBareWorkflow, OrderShapeLocalWorkflow],
        activities=[noop],
        max_cached_workflows=1000,
        max_concurrent_activities=200,
    )


def order_attributes(customer_id: str) -> TypedSearchAttributes:
    """The search attributes the API starts a service order's process with."""
    return start_attributes("quote_to_order", "received", customer_id, 11.9)


async def measure(
    base: str, target: str, key: str, args: argparse.Namespace, stack_pid: int
) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as setup:
        cid, sku = (await seed(setup)).split(":")
    url = httpx.URL(base)
    http = LoadClient(url.host, url.port or 80, headers)
    # The bare worker is configured as the stack's: traced only when the stack traces.
    tracing = Settings().tracing
    if tracing:
        trace.set_tracer_provider(create_tracer_provider())  # the plugin requires it
    client = await connect_temporal(target, tracing=tracing)
    queue = f"bench-{uuid.uuid4()}"
    worker = baseline_worker(client, queue)
    n, c = args.orders, args.concurrency
    shape_attributes = order_attributes(cid)
    ratios: dict[str, list[float]] = {"orders": [], "shape": []}
    async with worker:
        await run_orders(http, cid, sku, min(10, n), c)  # warm-up
        await run_workflows(client, queue, min(10, n), c, BareWorkflow.run)
        await run_workflows(client, queue, min(10, n), c, OrderShapeWorkflow.run, shape_attributes)

        async def orders(r: int) -> float:
            before = cpu.snapshot(stack_pid)
            elapsed, lat, own = await run_orders(http, cid, sku, n, c)
            rate = report(f"[{r}] orders via API (placed->completed)", n, elapsed, lat)
            print(
                f"{'      the process itself (no polling)':<38} {'':9}   p50 "
                f"{statistics.median(own) * 1000:7.0f} ms   p99 {pct(own, 0.99) * 1000:7.0f} ms"
            )
            print(f"      CPU per order: {cpu.per_item(before, cpu.snapshot(stack_pid), n)}")
            return rate

        async def baseline(
            label: str,
            run: Callable[[Any, int], Awaitable[int]],
            attributes: TypedSearchAttributes,
            r: int,
        ) -> float:
            before = cpu.snapshot(stack_pid)
            elapsed, lat = await run_workflows(client, queue, n, c, run, attributes)
            rate = report(f"[{r}] {label}", n, elapsed, lat)
            print(f"      CPU per workflow: {cpu.per_item(before, cpu.snapshot(stack_pid), n)}")
            return rate

        phases: list[tuple[str, Callable[[int], Awaitable[float]]]] = [
            ("orders", orders),
            (
                "bare",
                partial(
                    baseline,
                    f"bare workflow, {ORDER_STEPS} activities",
                    BareWorkflow.run,
                    TypedSearchAttributes.empty,
                ),
            ),
            (
                "shape",
                partial(
                    baseline, "order-shaped, no-op steps", OrderShapeWorkflow.run, shape_attributes
                ),
            ),
        ]
        for r in range(1, args.rounds + 1):
            # Each round starts with another phase: a machine that drifts during the run
            # favours none of them.
            turn = (r - 1) % len(phases)
            rates = {name: await phase(r) for name, phase in phases[turn:] + phases[:turn]}
            for name in ratios:
                ratios[name].append(rates[name] / rates["bare"])
            print(
                f"[{r}] ratio orders/bare: {ratios['orders'][-1]:.2f}"
                f"   (order-shaped no-op/bare, the ceiling: {ratios['shape'][-1]:.2f})"
            )
    await http.close()
    # The machine's noise shows in the spread of the rounds: read the median beside it.
    print(
        f"ratio orders/bare, median of {args.rounds}: {statistics.median(ratios['orders']):.2f}"
        f" (rounds {min(ratios['orders']):.2f}-{max(ratios['orders']):.2f})"
        f"   ceiling {statistics.median(ratios['shape']):.2f}"
        f" ({min(ratios['shape']):.2f}-{max(ratios['shape']):.2f})"
    )


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(label: str, n: int, elapsed: float, lat: list[float]) -> float:
    rate = n / elapsed
    print(
        f"{label:<38} {rate:7.1f}/s   p50 {statistics.median(lat) * 1000:7.0f} ms"
        f"   p99 {pct(lat, 0.99) * 1000:7.0f} ms   ({n} in {elapsed:.1f} s)"
    )
    return rate


def load_args(doc: str, items: str, argv: list[str] | None) -> argparse.Namespace:
    """A load benchmark's arguments: ``--<items>`` a round (200), ``--concurrency`` (20),
    ``--rounds`` (5: the machine drifts, and a median of five outlasts two bad rounds)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument(f"--{items}", type=positive, default=200)
    parser.add_argument("--concurrency", type=positive, default=20)
    parser.add_argument("--rounds", type=positive, default=5)
    return parser.parse_args(argv)


async def main(argv: list[str] | None = None) -> None:
    args = load_args(__doc__, "orders", argv)
    with tempfile.TemporaryDirectory(prefix="o2c-bench-") as tmp:
        data = Path(tmp)
        ports = {
            k: str(free_port())
            for k in (
                "O2C_API_PORT",
                "O2C_TEMPORAL_PORT",
                "O2C_TEMPORAL_UI_PORT",
                "O2C_SMTP_SINK_PORT",
            )
        }
        key = "o2c_admin_bench_" + uuid.uuid4().hex
        env = {
            **os.environ,
            **ports,
            "O2C_DATA_DIR": str(data),
            "O2C_ADMIN_KEY": key,
            "O2C_SANDBOX": "1",
        }
        for var in ("O2C_TEMPORAL_ADDRESS", "O2C_DATABASE_URL", "O2C_SMTP_URL"):
            env.pop(var, None)
        stack = start_stack(data, env)
        base = f"http://127.0.0.1:{ports['O2C_API_PORT']}"
        try:
            await wait_ready(base)
            print(
                f"o2c bench: {args.orders} orders a round, {args.rounds} rounds, "
                f"{args.concurrency} in flight, {os.cpu_count()} cores, "
                f"{Settings().worker_processes} worker processes"
            )
            await measure(base, f"127.0.0.1:{ports['O2C_TEMPORAL_PORT']}", key, args, stack.pid)
        except BaseException:
            log = (data / "dev.log").read_text(errors="replace").splitlines()
            print("the stack's log ends:", *log[-40:], sep="\n", file=sys.stderr)
            raise
        finally:
            stack.send_signal(signal.SIGTERM)
            try:
                stack.wait(timeout=60)
            except subprocess.TimeoutExpired:
                stack.kill()


if __name__ == "__main__":
    run_async(main())  # the event loop of the stack's workers, for the bare worker too
