"""The baselines, on the same server as the orders.

``BareWorkflow``: N no-op regular activities — the rate the issue compares orders with.
``OrderShapeWorkflow``: the Temporal footprint of a service-only card order with no work
in it — the same search attributes, status upserts, local and regular activities in the
same order — so its rate is the ceiling an order could reach if pricing, the ERP, the
gateway, SMTP and the HTTP API cost nothing.
``LocalBareWorkflow`` and ``OrderShapeLocalWorkflow``: the same with every step a local
activity (``bench.footprint`` prices the two kinds of step against each other).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from workflows.operable import SA_ATTENTION_KEY, SA_STATUS_KEY

TIMEOUT = timedelta(seconds=30)


@activity.defn(name="bench.noop")
async def noop(step: int) -> int:
    return step


@workflow.defn(name="BenchBareWorkflow")
class BareWorkflow:
    @workflow.run
    async def run(self, steps: int) -> int:
        for i in range(steps):
            await workflow.execute_activity(noop, i, start_to_close_timeout=TIMEOUT)
        return steps


@workflow.defn(name="BenchOrderShapeWorkflow")
class OrderShapeWorkflow:
    """``QuoteToOrderWorkflow._order_stage`` for a service-only card order, steps as no-ops
    (started by the caller with the search attributes the API sets)."""

    async def _local(self, step: int) -> None:
        await workflow.execute_local_activity(noop, step, start_to_close_timeout=TIMEOUT)

    async def _regular(self, step: int) -> None:
        await workflow.execute_activity(noop, step, start_to_close_timeout=TIMEOUT)

    def _status(self, status: str) -> None:
        workflow.upsert_search_attributes(
            [SA_STATUS_KEY.value_set(status), SA_ATTENTION_KEY.value_set(False)]
        )

    @workflow.run
    async def run(self, steps: int) -> int:
        await self._local(0)  # check_credit
        await self._local(1)  # create_sales_order
        self._status("confirmed")
        await self._local(2)  # the read model
        await self._regular(3)  # e-mail
        await self._local(4)  # issue_invoice
        await self._regular(5)  # charge_invoice
        self._status("completed")
        await self._local(6)  # the read model
        return steps


@workflow.defn(name="BenchLocalBareWorkflow")
class LocalBareWorkflow:
    @workflow.run
    async def run(self, steps: int) -> int:
        for i in range(steps):
            await workflow.execute_local_activity(noop, i, start_to_close_timeout=TIMEOUT)
        return steps


@workflow.defn(name="BenchOrderShapeLocalWorkflow")
class OrderShapeLocalWorkflow(OrderShapeWorkflow):
    """The order's footprint were the e-mail and the card charge local activities too."""

    async def _regular(self, step: int) -> None:
        await self._local(step)

    @workflow.run
    async def run(self, steps: int) -> int:
        return await super().run(steps)
