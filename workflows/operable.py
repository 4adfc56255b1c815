"""What every o2c process shares: a timeline of steps, needs-attention, operator actions.

``OperableWorkflow.step`` runs one activity under a bounded retry policy. A business refusal
(a non-retryable ``ApplicationError`` with a domain code) is raised to the process as
``BusinessFailure`` to branch on; a technical failure that outlives its retries puts the
process in *needs attention*: the step and error are recorded, the process becomes
searchable as such, and it waits for an operator Update — ``retry`` (run the step again),
``skip`` (continue with a given result) or ``abort`` (compensate and end). Updates have
validators so a request that does not fit the state never reaches history.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ValidationError
from temporalio import workflow
from temporalio.common import (
    RetryPolicy,
    SearchAttributeKey,
    SearchAttributePair,
    SearchAttributeUpdate,
    TypedSearchAttributes,
)
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from workflows.clock import ProcessClock
    from workflows.contracts.activities import StepResult
    from workflows.contracts.common import (
        SA_AMOUNT,
        SA_CUSTOMER_ID,
        SA_NEEDS_ATTENTION,
        SA_PROCESS_TYPE,
        SA_STATUS,
        SA_TEST_CLOCK,
        AbortRequest,
        ClockAdvance,
        ClockRef,
        ClockStatus,
        FailedStep,
        OperatorAck,
        ProcessType,
        ProcessView,
        SkipRequest,
        Step,
    )

R = TypeVar("R", bound=StepResult)

SA_TYPE_KEY = SearchAttributeKey.for_keyword(SA_PROCESS_TYPE)
SA_STATUS_KEY = SearchAttributeKey.for_keyword(SA_STATUS)
SA_CUSTOMER_KEY = SearchAttributeKey.for_keyword(SA_CUSTOMER_ID)
SA_ATTENTION_KEY = SearchAttributeKey.for_bool(SA_NEEDS_ATTENTION)
SA_AMOUNT_KEY = SearchAttributeKey.for_float(SA_AMOUNT)
SA_CLOCK_KEY = SearchAttributeKey.for_keyword(SA_TEST_CLOCK)


def start_attributes(
    process_type: ProcessType,
    status: str,
    customer_id: str,
    amount: float | None = None,
    clock_id: str | None = None,
) -> TypedSearchAttributes:
    """The search attributes a process is started with (its starter sets them, which saves
    the process a visibility write); ``publish_start`` sets them when it was not."""
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(SA_TYPE_KEY, process_type),
        SearchAttributePair(SA_STATUS_KEY, status),
        SearchAttributePair(SA_CUSTOMER_KEY, customer_id),
        SearchAttributePair(SA_ATTENTION_KEY, False),
    ]
    if amount is not None:
        pairs.append(SearchAttributePair(SA_AMOUNT_KEY, amount))
    if clock_id:
        pairs.append(SearchAttributePair(SA_CLOCK_KEY, clock_id))
    return TypedSearchAttributes(pairs)


# Technical failures retry with backoff for about a minute before an operator is asked:
# long enough to ride out a blip, short enough that a real outage shows up quickly.
STEP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=20),
    maximum_attempts=5,
)
# A step runs its first attempt alone (in processes whose starter asks for it): if it
# fails, the process shows the step retrying (its view saved with the error) before the
# attempts left run, backing off as above.
FIRST_ATTEMPT = RetryPolicy(maximum_attempts=1)
RETRIES_LEFT = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=20),
    maximum_attempts=4,
)
# In-process ERP calls answer in milliseconds; network calls get more room (a "slow"
# sandbox system answers after 2 s).
LOCAL_TIMEOUT = timedelta(seconds=10)
REMOTE_TIMEOUT = timedelta(seconds=30)
# A cancel or an abort answers once its compensation is done, or an operator is needed,
# or after this long with the state as it is then (API.md: a POST that moves a process
# answers at once); a compensation step retrying against a system that is down takes ~15 s.
INTERRUPT_ANSWER_WITHIN = timedelta(seconds=2)
ANSWER_INTERRUPT_IN_TIME = "answer-interrupt-in-time"
# Local-activity backoffs longer than this become durable workflow timers instead of
# sleeps inside the worker, so a worker restart mid-backoff loses nothing.
LOCAL_RETRY_THRESHOLD = timedelta(seconds=1)


class BusinessFailure(Exception):
    """A typed business refusal from a step (``code`` as in ``domain.errors``)."""

    def __init__(self, code: str, message: str, details: list[Any]) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


class ProcessInterrupted(Exception):
    """The process must stop what it does: an operator abort or a client's cancel."""

    def __init__(self, kind: Literal["abort", "cancel"], reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class _OperatorAction(BaseModel):
    action: Literal["retry", "skip", "abort"]
    result: dict[str, Any] | None = None


def conflict(message: str) -> ApplicationError:
    """The error an Update validator raises when the state does not allow the request."""
    return ApplicationError(message, type="conflict", non_retryable=True)


def not_found(message: str) -> ApplicationError:
    """The error an Update validator raises for an id the process does not have (404)."""
    return ApplicationError(message, type="not_found", non_retryable=True)


class OperableWorkflow:
    """Base class of every o2c workflow (see the module docstring)."""

    process_type: ClassVar[ProcessType]

    def _init_operable(
        self,
        process_id: str,
        customer_id: str,
        clock: ClockRef | None,
        first_attempt_alone: bool = False,
    ) -> None:
        """``first_attempt_alone``: the process runs each step's first attempt alone (see
        ``step``); its starter says so, so executions from before keep one schedule per
        step for all their life."""
        self.process_id = process_id
        self._first = FIRST_ATTEMPT if first_attempt_alone else STEP_RETRY
        self.customer_id = customer_id
        self.clock = ProcessClock(clock)
        self.steps: list[Step] = []
        self.failed: FailedStep | None = None
        self._failed_result_type: type[StepResult] = StepResult
        self._action: _OperatorAction | None = None
        self._interrupt: ProcessInterrupted | None = None
        self._compensating = False
        self._terminal = False
        self._published: tuple[str | None, bool | None] = (None, None)

    @property
    def log_ids(self) -> dict[str, str]:
        """``extra`` of the process's log records: its process and customer ids."""
        return {"process_id": self.process_id, "customer_id": self.customer_id}

    # --- hooks a process overrides -----------------------------------------------------

    def status(self) -> str:
        raise NotImplementedError

    def refs(self) -> dict[str, str]:
        """The business records the process is about, by kind (``order_id`` …)."""
        return {}

    async def _on_attention(self, needs_attention: bool) -> None:
        """Called when the process enters or leaves needs-attention (save its view)."""

    async def _on_progress(self) -> None:
        """Called when a step's first attempt failed and it retries (save its view)."""

    # --- steps ----------------------------------------------------------------------------

    def _timeline(self, name: str) -> Step:
        step = Step(name=name, status="running", started_at=self.clock.now())
        self.steps.append(step)
        return step

    async def step(
        self,
        name: str,
        fn: Callable[..., Any],
        arg: BaseModel,
        result_type: type[R],
        *,
        local: bool = True,
        expect: tuple[str, ...] = (),
        again: Step | None = None,
    ) -> R:
        """Run ``fn(arg)`` as a timeline step; see the module docstring for failures.

        ``expect`` names the business error codes the caller branches on; any other
        non-retryable error also asks an operator, so no refusal goes unhandled.
        ``again``: an entry of this step to continue instead of adding one (a check the
        process repeats while it waits, so waiting long does not grow the timeline): it
        keeps its first start, counts every attempt and shows the latest outcome.
        """
        if again is None:
            entry = self._timeline(name)
        else:
            entry = again
            entry.status, entry.error, entry.finished_at = "running", None, None
        policy = self._first
        while True:
            try:
                result = await self._execute(fn, arg, result_type, local, policy)
            except FailureError as err:
                # Activity failures arrive as ActivityError(cause); some local-activity
                # failures surface as the cause itself.
                cause = err.cause if isinstance(err, ActivityError) else err
                if isinstance(cause, ApplicationError) and cause.type in expect:
                    self._finish(entry, "failed", 1, f"{cause.type}: {cause.message}")
                    raise BusinessFailure(
                        cause.type or "error", cause.message, list(cause.details)
                    ) from err
                retryable = not (isinstance(cause, ApplicationError) and cause.non_retryable)
                if isinstance(cause, ApplicationError):
                    message = f"{cause.type}: {cause.message}"
                else:
                    message = f"{type(cause).__name__}: {cause}"
                if policy is FIRST_ATTEMPT and retryable:
                    # The first attempt failed: the process shows the step retrying, with
                    # its error, before the attempts left run.
                    entry.attempts += 1
                    entry.error = message
                    await self._on_progress()
                    policy = RETRIES_LEFT
                    continue
                whole = RETRIES_LEFT if policy is RETRIES_LEFT else STEP_RETRY
                attempts = whole.maximum_attempts if retryable else 1
                self._finish(entry, "failed", attempts, message)
                action = await self._await_operator(entry, result_type)
                if action.action == "retry":
                    policy = self._first
                    continue
                return result_type.model_validate(action.result or {})
            self._finish(entry, "done", result.attempt, None)
            return result

    async def _execute(
        self,
        fn: Callable[..., Any],
        arg: BaseModel,
        result_type: type[R],
        local: bool,
        policy: RetryPolicy = STEP_RETRY,
    ) -> R:
        if local:
            return await workflow.execute_local_activity_method(
                fn,
                arg,
                start_to_close_timeout=LOCAL_TIMEOUT,
                retry_policy=policy,
                local_retry_threshold=LOCAL_RETRY_THRESHOLD,
            )
        return await workflow.execute_activity_method(
            fn, arg, start_to_close_timeout=REMOTE_TIMEOUT, retry_policy=policy
        )

    def last_status(self, name: str) -> str | None:
        """The status of the latest timeline step called ``name`` (None if never run)."""
        entry = self.last_entry(name)
        return entry.status if entry else None

    def last_entry(self, name: str) -> Step | None:
        """The latest timeline step called ``name`` (None if never run)."""
        return next((s for s in reversed(self.steps) if s.name == name), None)

    def _finish(self, entry: Step, status: Any, attempts: int, error: str | None) -> None:
        entry.status = status
        entry.attempts += attempts
        entry.error = error
        entry.finished_at = self.clock.now()

    async def _await_operator(self, entry: Step, result_type: type[StepResult]) -> _OperatorAction:
        self.failed = FailedStep(
            name=entry.name,
            error=entry.error or "failed",
            attempts=entry.attempts,
            failed_at=self.clock.now(),
        )
        self._failed_result_type = result_type
        self._action = None
        self.publish(needs_attention=True)
        await self._on_attention(True)
        workflow.logger.warning(
            "step %s needs attention: %s",
            entry.name,
            entry.error,
            extra=self.log_ids,
        )
        # Through the clock: a process waiting for an operator has acted on all it can, so
        # on a test clock it counts as settled (the clock can turn ready).
        await self.clock.wait(
            lambda: (
                self._action is not None or (self._interrupt is not None and not self._compensating)
            )
        )
        action = self._action or _OperatorAction(action="abort")
        self.failed, self._action = None, None
        # The timeline says what the operator chose before the view is saved with it.
        if action.action == "retry":
            entry.status, entry.error, entry.finished_at = "running", None, None
        elif action.action == "skip":
            self._finish(entry, "skipped", 0, entry.error)
        self.publish(needs_attention=False)
        await self._on_attention(False)
        if action.action == "abort":
            assert self._interrupt is not None
            raise self._interrupt
        return action

    # --- waiting, interrupts --------------------------------------------------------------

    async def wait(self, condition: Callable[[], bool], deadline: datetime | None = None) -> bool:
        """Wait on the process clock; an abort or cancel interrupts the wait."""
        done = await self.clock.wait(lambda: condition() or self._interrupt is not None, deadline)
        self.check_interrupt()
        return done

    def check_interrupt(self) -> None:
        if self._interrupt is not None and not self._compensating:
            raise self._interrupt

    def request_interrupt(self, kind: Literal["abort", "cancel"], reason: str) -> None:
        if self._interrupt is None:
            self._interrupt = ProcessInterrupted(kind, reason)

    # --- search attributes ----------------------------------------------------------------

    def publish_start(self, amount: float | None = None) -> None:
        """Upsert the identity search attributes (type, customer, clock, amount), unless the
        starter already set them (the API does: it saves a visibility write per process)."""
        known = workflow.info().typed_search_attributes
        if known.get(SA_TYPE_KEY) is not None:
            self._published = (known.get(SA_STATUS_KEY), known.get(SA_ATTENTION_KEY))
            return
        updates: list[SearchAttributeUpdate[Any]] = [
            SA_TYPE_KEY.value_set(self.process_type),
            SA_CUSTOMER_KEY.value_set(self.customer_id),
        ]
        if amount is not None:
            updates.append(SA_AMOUNT_KEY.value_set(amount))
        if self.clock.clock_id:
            updates.append(SA_CLOCK_KEY.value_set(self.clock.clock_id))
        workflow.upsert_search_attributes(updates)
        self.publish()

    def publish(self, needs_attention: bool | None = None) -> None:
        """Upsert status and needs-attention (searchable: what waits for an operator)."""
        attention = self.failed is not None if needs_attention is None else needs_attention
        state = (self.status(), attention)
        if state == self._published:
            return  # every upsert is a visibility write on the server: only on change
        self._published = state
        workflow.upsert_search_attributes(
            [SA_STATUS_KEY.value_set(state[0]), SA_ATTENTION_KEY.value_set(state[1])]
        )

    # --- operator updates, clock signal, queries -----------------------------------------

    @workflow.update
    async def retry(self) -> OperatorAck:
        """Run the failed step again."""
        name = self._take_action(_OperatorAction(action="retry"))
        await workflow.wait_condition(lambda: self.failed is None or self.failed.name != name)
        return OperatorAck(step=name, action="retry", status=self.status())

    @retry.validator
    def _validate_retry(self) -> None:
        self._need_failed_step()

    @workflow.update
    async def skip(self, req: SkipRequest) -> OperatorAck:
        """Mark the failed step done with the given result and go on."""
        name = self._take_action(_OperatorAction(action="skip", result=req.result))
        await workflow.wait_condition(lambda: self.failed is None or self.failed.name != name)
        return OperatorAck(step=name, action="skip", status=self.status())

    @skip.validator
    def _validate_skip(self, req: SkipRequest) -> None:
        self._need_failed_step()
        assert self.failed is not None
        kind, sent = self._failed_result_type, req.result or {}
        settable = kind.model_fields.keys() if kind.skip_fields is None else kind.skip_fields
        problems = [
            (field, "no such field in this step's result")
            if field not in kind.model_fields
            else (field, "a skip cannot set this; retry the step to use what it made")
            for field in sent
            if field not in settable
        ]
        if not problems:
            try:
                problems = self.skip_problems(kind.model_validate(sent))
            except ValidationError as exc:
                problems = [
                    (".".join(str(part) for part in e["loc"]), e["msg"])
                    for e in exc.errors(include_url=False)
                ]
        if problems:
            raise ApplicationError(
                f"result does not fit step {self.failed.name}: "
                + "; ".join(f"{field}: {msg}" for field, msg in problems),
                {"errors": [{"loc": ["body", "result", f], "msg": m} for f, m in problems]},
                type="invalid_input",
                non_retryable=True,
            )

    def skip_problems(self, result: StepResult) -> list[tuple[str, str]]:
        """What the process itself finds wrong with a skip result that fits the failed
        step's type, as (field, message) pairs. Processes add their own rules (a currency's
        minor unit, say); none are common to all."""
        return []

    @workflow.update
    async def abort(self, req: AbortRequest) -> OperatorAck:
        """Compensate what was done and end the process."""
        name = self.failed.name if self.failed else ""
        self.request_interrupt("abort", req.reason)
        await self.interrupt_answered()
        return OperatorAck(step=name, action="abort", status=self.status())

    async def interrupt_answered(self) -> None:
        """Wait until a requested cancel or abort is done or waits for an operator, for at
        most ``INTERRUPT_ANSWER_WITHIN`` (processes that started before the bound wait on)."""

        def settled() -> bool:
            return self._terminal or (self._compensating and self.failed is not None)

        if not workflow.patched(ANSWER_INTERRUPT_IN_TIME):
            await workflow.wait_condition(settled)
            return
        with suppress(TimeoutError):  # still compensating: the answer shows it as it is
            await workflow.wait_condition(settled, timeout=INTERRUPT_ANSWER_WITHIN)

    @abort.validator
    def _validate_abort(self, req: AbortRequest) -> None:
        if self._terminal or self._interrupt is not None:
            raise conflict(f"process is {self.status()}: nothing to abort")
        refusal = self.abort_refusal()
        if refusal is not None:
            raise conflict(refusal)

    def abort_refusal(self) -> str | None:
        """Why the process cannot be aborted now (what it did cannot be compensated), or
        None; a process overrides it."""
        return None

    def _need_failed_step(self) -> None:
        if self.failed is None or self._action is not None:
            raise conflict(f"process is {self.status()}: no step waits for an operator")

    def _take_action(self, action: _OperatorAction) -> str:
        assert self.failed is not None
        self._action = action
        return self.failed.name

    @workflow.signal
    def advance_clock(self, adv: ClockAdvance) -> None:
        """The customer's test clock moved (sent by the API to every process on it)."""
        self.clock.advance(adv.frozen_time)

    @workflow.query
    def clock_status(self) -> ClockStatus:
        status = self.clock.status()
        if self._terminal:
            status.settled_time = self.clock.now()
        return status

    @workflow.query
    def process(self) -> ProcessView:
        return ProcessView(
            process_id=self.process_id,
            type=self.process_type,
            status=self.status(),
            customer_id=self.customer_id,
            steps=self.steps,
            failed_step=self.failed,
            refs=self.refs(),
        )
