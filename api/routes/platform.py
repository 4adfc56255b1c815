"""Platform: API keys, test clocks, sandbox faults, health, readiness, metrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from api.deps import Admin, ErpDep, StateDep, Viewer, sandbox_only
from api.errors import PROBLEM, RETRY_AFTER, TemporalUnavailable, problem
from api.idempotency import IDEMPOTENT, idempotent
from systems.ports import Erp
from systems.records import Fault, FaultSet, Role, TestClock, TestClockCreate
from workflows.contracts.common import SA_TEST_CLOCK, ClockAdvance, ClockStatus

router = APIRouter(tags=["platform"])
Sandbox = Annotated[None, Depends(sandbox_only)]
log = logging.getLogger("o2c.api")


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    role: Role


class KeyCreated(BaseModel):
    id: str
    name: str
    role: Role
    key: str


@router.post("/v1/api-keys", status_code=201, response_model=KeyCreated, openapi_extra=IDEMPOTENT)
async def create_key(body: KeyCreate, request: Request, who: Admin, erp: ErpDep) -> Response:
    """Create an API key; the secret is shown once — again only to the same caller retrying
    with the same ``Idempotency-Key`` (kept encrypted under that caller's own key)."""

    async def create(_: Callable[[str], str]) -> KeyCreated:
        record, secret = await run_in_threadpool(erp.create_api_key, body.name, body.role)
        return KeyCreated(id=record.id, name=record.name, role=record.role, key=secret)

    return await idempotent(request, who, erp, 201, create, sealed=("key",))


class Caller(BaseModel):
    id: str = Field(description="the key's id; `admin` for O2C_ADMIN_KEY")
    role: Role


@router.get("/v1/api-keys/me", response_model=Caller)
def whoami(who: Viewer) -> Caller:
    """The key the request was made with: what its holder may do (the console shows only
    the actions a key's role allows)."""
    return Caller(id=who.key_id, role=who.role)


@router.post("/v1/test-clocks", status_code=201, response_model=TestClock, openapi_extra=IDEMPOTENT)
async def create_clock(
    body: TestClockCreate, request: Request, who: Admin, _s: Sandbox, erp: ErpDep
) -> Response:
    """Create a test clock frozen at a time."""
    return await idempotent(
        request, who, erp, 201, lambda _: run_in_threadpool(erp.create_clock, body.frozen_time)
    )


def _clock_query(clock_id: str) -> str:
    return f"{SA_TEST_CLOCK} = '{clock_id}' AND ExecutionStatus = 'Running'"


# A process registered on a clock that Temporal does not know (yet) is being started for so
# long; its starter sends it the clock's time once it runs. Later, its start failed.
STARTING_GRACE = timedelta(seconds=60)


async def _signal_all(client: Client, erp: Erp, clock: TestClock, only_behind: bool) -> bool:
    """Send the clock's time to its running processes; True when every one has settled.

    The processes are those Temporal's visibility lists as running on the clock and those
    their starters registered on it (visibility is eventually consistent: a process
    started a moment ago may be missing there). A registered process visibility does not
    list is looked up; found ended, it leaves the register."""
    registered = await run_in_threadpool(erp.clock_processes, clock.id)
    listed = {wf.id async for wf in client.list_workflows(_clock_query(clock.id))}
    settled, ended = True, []
    for pid in dict.fromkeys([*registered, *listed]):
        handle = client.get_workflow_handle(pid)
        try:
            if pid not in listed:
                described = await handle.describe()
                if described.status != WorkflowExecutionStatus.RUNNING:
                    ended.append(pid)
                    continue
            if only_behind:
                status = await handle.query("clock_status", result_type=ClockStatus)
                if status.settled_time is not None and status.settled_time >= clock.frozen_time:
                    continue
                settled = False
            await handle.signal("advance_clock", ClockAdvance(frozen_time=clock.frozen_time))
        except RPCError as exc:
            log.info("process %s on clock %s: %s", pid, clock.id, exc.message)
            if exc.status != RPCStatusCode.NOT_FOUND:
                settled = False  # its state is unknown: not ready yet
            elif pid in registered and datetime.now(UTC) - registered[pid] < STARTING_GRACE:
                settled = False  # still being started
            else:
                ended.append(pid)  # ended meanwhile (or never started): nothing left due
    await run_in_threadpool(
        erp.forget_clock_processes, clock.id, [x for x in ended if x in registered]
    )
    return settled


@router.post("/v1/test-clocks/{clock_id}/advance", response_model=TestClock)
async def advance_clock(
    clock_id: str, body: TestClockCreate, _: Admin, _s: Sandbox, state: StateDep
) -> TestClock:
    """Move the clock forward; every process of its customers acts on what fell due.

    When Temporal is unreachable the clock still moves (503); the same advance retried
    answers the clock and re-sends its time, as reading it later does for every process
    that has not caught up."""
    erp = state.systems.erp
    clock = await run_in_threadpool(erp.advance_clock, clock_id, body.frozen_time)
    await _signal_all(await state.temporal.get(), erp, clock, only_behind=False)
    return clock


@router.get("/v1/test-clocks/{clock_id}", response_model=TestClock)
async def get_clock(clock_id: str, _: Admin, _s: Sandbox, state: StateDep) -> TestClock:
    """The clock; ``ready`` once every process on it has acted on all that is due."""
    erp = state.systems.erp
    clock = await run_in_threadpool(erp.get_clock, clock_id)
    if clock.status == "advancing" and await _signal_all(
        await state.temporal.get(), erp, clock, only_behind=True
    ):
        clock = await run_in_threadpool(erp.mark_clock_ready, clock_id, clock.frozen_time)
    return clock


@router.post("/v1/sandbox/faults", response_model=Fault)
def set_fault(body: FaultSet, _: Admin, _s: Sandbox, erp: ErpDep) -> Fault:
    """Make a sandbox system fail (down), lag (slow) or work (ok)."""
    return erp.set_fault(body.system, body.mode)


@router.get("/v1/sandbox/faults", response_model=list[Fault])
def list_faults(_: Admin, _s: Sandbox, erp: ErpDep) -> list[Fault]:
    """The fault mode of every sandbox system."""
    return erp.faults()


@router.get("/healthz", tags=["health"])
def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


NOT_READY = {
    "description": "not ready: a problem whose `temporal` and `database` members say which",
    "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    "headers": {"Retry-After": {"schema": {"type": "integer"}}},
}


@router.get("/readyz", tags=["health"], responses={503: NOT_READY})
async def readyz(state: StateDep) -> JSONResponse:
    """Readiness: Temporal and the database are reachable (``{"temporal": "ok",
    "database": "ok"}``; else a 503 problem naming what is not)."""
    checks: dict[str, Any] = {}
    try:
        client = await state.temporal.get()
        await asyncio.wait_for(client.service_client.check_health(), timeout=3)
        checks["temporal"] = "ok"
    except (TemporalUnavailable, RPCError, TimeoutError, RuntimeError) as exc:
        checks["temporal"] = f"unavailable: {type(exc).__name__}"
    try:
        await run_in_threadpool(state.systems.erp.ping)
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["database"] = f"unavailable: {type(exc).__name__}"
    if all(v == "ok" for v in checks.values()):
        return JSONResponse(checks)
    down = ", ".join(k for k, v in checks.items() if v != "ok")
    return problem(
        503, f"not ready: {down} unavailable", "unavailable", {"Retry-After": RETRY_AFTER}, **checks
    )


@router.get("/metrics", tags=["health"], response_class=PlainTextResponse)
def metrics(request: Request) -> PlainTextResponse:
    """Prometheus metrics."""
    return PlainTextResponse(
        request.app.state.metrics.render(), media_type="text/plain; version=0.0.4"
    )
