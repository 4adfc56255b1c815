"""Benchmark: what a regular and a local activity cost on this server, with no work in them.

Starts a dev server as ``o2c dev`` does (persisted in WAL mode, o2c's search attributes) in
a temporary folder and runs, on the baselines' worker of ``bench.orders``, workflows made
only of no-op steps: the bare workflow ``bench.orders`` compares orders with (5 regular
activities), the same with 5 local activities, the footprint of a service-only card order
(``OrderShapeWorkflow``: its search attributes, status upserts, 4 local and 2 regular
activities) and that footprint with the e-mail and the charge local too. Each is printed
with its rate, its CPU per workflow and its ratio to the bare workflow (median of the
rounds; each round starts with another): the Temporal side of the choice between the two
kinds of step, free of the work the steps do.

    python -m bench.footprint [--workflows 200] [--concurrency 20] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from temporalio.common import TypedSearchAttributes

from bench import cpu
from bench.bare import BareWorkflow, LocalBareWorkflow, OrderShapeLocalWorkflow, OrderShapeWorkflow
from bench.orders import (
    baseline_worker,
    free_port,
    load_args,
    order_attributes,
    report,
    run_workflows,
)
from cli import run_async
from clients import connect_temporal
from devrunner import Stack, temporal_command, wait_port
from settings import Settings

SHAPES: list[tuple[str, Callable[[Any, int], Awaitable[int]], bool]] = [
    ("bare, 5 regular activities", BareWorkflow.run, False),
    ("bare, 5 local activities", LocalBareWorkflow.run, False),
    ("order-shaped (4 local, 2 regular)", OrderShapeWorkflow.run, True),
    ("order-shaped, every step local", OrderShapeLocalWorkflow.run, True),
]


async def measure(address: str, args: argparse.Namespace) -> None:
    client = await connect_temporal(address, tracing=False)
    queue = f"footprint-{uuid.uuid4()}"
    attributes = order_attributes("cus_footprint")
    rates: dict[str, list[float]] = {label: [] for label, _, _ in SHAPES}
    async with baseline_worker(client, queue):
        for _, run, shaped in SHAPES:  # warm-up
            sa = attributes if shaped else TypedSearchAttributes.empty
            await run_workflows(client, queue, 10, args.concurrency, run, sa)
        for r in range(args.rounds):
            turn = r % len(SHAPES)
            for label, run, shaped in SHAPES[turn:] + SHAPES[:turn]:
                sa = attributes if shaped else TypedSearchAttributes.empty
                before = cpu.snapshot(os.getpid())
                elapsed, lat = await run_workflows(
                    client, queue, args.workflows, args.concurrency, run, sa
                )
                rates[label].append(report(f"[{r + 1}] {label}", args.workflows, elapsed, lat))
                spent = cpu.per_item(before, cpu.snapshot(os.getpid()), args.workflows)
                print(f"      CPU per workflow: {spent}")
    bare = statistics.median(rates[SHAPES[0][0]])
    print(f"median of {args.rounds} rounds, as a ratio to the bare workflow:")
    for label, _, _ in SHAPES:
        rate = statistics.median(rates[label])
        print(f"  {label:<38} {rate:7.1f}/s   {rate / bare:5.2f}")


async def main(argv: list[str] | None = None) -> None:
    args = load_args(__doc__, "workflows", argv)
    with tempfile.TemporaryDirectory(prefix="o2c-footprint-") as tmp:
        settings = Settings(
            data_dir=Path(tmp), temporal_port=free_port(), temporal_ui_port=free_port()
        )
        (settings.data_dir / "logs").mkdir()
        stack = Stack(settings)
        try:
            stack.spawn("temporal", temporal_command(settings), dict(os.environ))
            wait_port(settings.temporal_port, stack)
            print(
                f"o2c footprint bench: {args.workflows} workflows a round, {args.rounds} rounds, "
                f"{args.concurrency} in flight"
            )
            await measure(f"127.0.0.1:{settings.temporal_port}", args)
        finally:
            stack.stop()


if __name__ == "__main__":
    run_async(main())
