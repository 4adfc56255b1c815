"""Harness for workflow tests: the time-skipping server, a worker on a fresh task queue, and
the real activity classes over the embedded ERP (temp SQLite), the sandbox gateway and a
fake notifier."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import pytest_asyncio
from pydantic import BaseModel
from temporalio.client import WorkflowHandle, WorkflowUpdateStage
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from activities.faults import Faults
from settings import Settings
from systems.db import create_schema, make_engine
from systems.erp.embedded import EmbeddedErp
from systems.payments.sandbox import SandboxGateway
from systems.quoting import credit_snapshot, price_request, process_input
from systems.registry import Systems
from tests.factories import CARD_OK, add_card, catalog, customer
from tests.fakes.notifier import FakeNotifier
from worker import build_worker
from workflows.contracts.common import ClockRef, ProcessView
from workflows.contracts.quote_to_order import (
    LineRequest,
    Order,
    PaymentTerms,
    Quote,
    QuoteToOrderInput,
)
from workflows.quote_to_order import QuoteToOrderWorkflow

M = TypeVar("M", bound=BaseModel)
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SETUP = [{"sku": "SETUP", "quantity": 1}]
WIDGETS = [{"sku": "WIDGET-1", "quantity": 3}]


@dataclass
class Harness:
    """One test's worker, systems and helpers on the session's time-skipping server.

    Every test must take the processes it starts to an end: one left waiting (its worker
    gone with the test) stalls the shared server's time skipping for the tests after it,
    even when terminated — they fail with ``RPCError: Timeout expired``."""

    env: WorkflowEnvironment
    systems: Systems
    notifier: FakeNotifier
    gateway: SandboxGateway
    task_queue: str

    @property
    def erp(self) -> EmbeddedErp:
        assert isinstance(self.systems.erp, EmbeddedErp)
        return self.systems.erp

    async def input(
        self,
        customer_id: str,
        lines: list[dict[str, Any]],
        *,
        quote: bool = True,
        discount: str = "0",
        valid_days: int = 30,
        payment: PaymentTerms | None = None,
        clock: ClockRef | None = None,
        credit: bool = False,
    ) -> QuoteToOrderInput:
        """The input the API gives a process; ``credit``: an order placed directly with the
        credit position read at placement, as the API placed orders before the process
        committed credit itself (executions started so may still be running)."""
        priced = price_request(
            self.erp,
            customer_id,
            [LineRequest.model_validate(x) for x in lines],
            Decimal(discount),
            Decimal("0.20"),
        )
        suffix = uuid.uuid4().hex[:12]
        # The time-skipping server's clock runs ahead of the wall clock once a test skips.
        now = await self.env.get_current_time()
        created_at = clock.frozen_time if clock else now
        inp = process_input(
            priced,
            quote_id=f"quo_{suffix}" if quote else None,
            order_id=f"ord_{suffix}",
            created_at=created_at,
            clock=clock,
            valid_days=valid_days,
            payment=payment,
        )
        if not credit:
            return inp
        snapshot = credit_snapshot(self.erp, customer_id, created_at.date())
        legacy = {"credit": snapshot, "commit_credit": False, "first_attempt_alone": False}
        return inp.model_copy(update=legacy)

    async def start(self, inp: QuoteToOrderInput) -> WorkflowHandle[Any, Any]:
        return await self.env.client.start_workflow(
            QuoteToOrderWorkflow.run, inp, id=inp.process_id, task_queue=self.task_queue
        )

    async def order(self, handle: WorkflowHandle[Any, Any]) -> Order:
        return await handle.query("order", result_type=Order)  # type: ignore[no-any-return]

    async def quote(self, handle: WorkflowHandle[Any, Any]) -> Quote:
        return await handle.query("quote", result_type=Quote)  # type: ignore[no-any-return]

    async def view(self, handle: WorkflowHandle[Any, Any]) -> ProcessView:
        return await handle.query("process", result_type=ProcessView)  # type: ignore[no-any-return]

    async def until(
        self,
        handle: WorkflowHandle[Any, Any],
        query: str,
        result_type: type[M],
        check: Callable[[M], bool],
        timeout: float = 20.0,
    ) -> M:
        """Poll a query until ``check`` holds (the process moves without timers)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            value = await handle.query(query, result_type=result_type)
            if value is not None and check(value):
                return value  # type: ignore[no-any-return]
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{query} never satisfied the check; last: {value!r}")
            await asyncio.sleep(0.05)

    async def update_accepted(
        self, handle: WorkflowHandle[Any, Any], name: str, arg: Any = None
    ) -> None:
        """Send an Update and wait only until it is accepted.

        The time-skipping server loses the outcome of an Update that completes in the same
        workflow task as the workflow itself; the workflow's result is asserted instead.
        """
        args = [] if arg is None else [arg]
        try:
            await handle.start_update(name, *args, wait_for_stage=WorkflowUpdateStage.ACCEPTED)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise

    def set_fault(self, system: str, mode: str) -> None:
        self.erp.set_fault(system, mode)  # type: ignore[arg-type]


@pytest_asyncio.fixture
async def h(ts_env: WorkflowEnvironment, db_url: str) -> AsyncIterator[Harness]:
    engine = make_engine(db_url)
    create_schema(engine)
    erp = EmbeddedErp(engine)
    gateway = SandboxGateway(engine)
    notifier = FakeNotifier()
    systems = Systems(erp=erp, gateway=gateway, notifier=notifier)
    queue = f"q2o-{uuid.uuid4()}"
    settings = Settings(sandbox=True)
    worker = build_worker(
        ts_env.client, systems, settings, task_queue=queue, faults=Faults(erp, True, 0)
    )
    async with worker:
        yield Harness(ts_env, systems, notifier, gateway, queue)
    engine.dispose()


async def card_customer(h: Harness, card: str = CARD_OK, **kw: str) -> str:
    """The catalog, and a customer with ``card`` on file (``kw``: ``customer``'s options)."""
    catalog(h.erp)
    c = customer(h.erp, **kw)  # type: ignore[arg-type]
    await add_card(h.erp, h.gateway, c.id, card)
    return c.id
