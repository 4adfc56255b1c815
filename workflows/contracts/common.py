"""Contracts every process shares: steps, failed step, operator actions, test clocks."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

StepStatus = Literal["pending", "running", "done", "failed", "skipped", "compensated"]
ProcessType = Literal[
    "quote_to_order", "subscription", "billing_cycle", "dunning", "partner_settlement"
]

# Typed search attributes (registered at start-up; plain text, so no personal data here).
SA_PROCESS_TYPE = "O2cProcessType"
SA_STATUS = "O2cStatus"
SA_CUSTOMER_ID = "O2cCustomerId"
SA_NEEDS_ATTENTION = "O2cNeedsAttention"
SA_AMOUNT = "O2cAmount"
SA_TEST_CLOCK = "O2cTestClock"


class Step(BaseModel):
    """One entry of a process timeline."""

    name: str
    status: StepStatus
    attempts: int = 0
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class FailedStep(BaseModel):
    name: str
    error: str
    attempts: int
    failed_at: datetime


class SkipRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    result: dict[str, Any] | None = None


class AbortRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500)


class OperatorAck(BaseModel):
    """What an operator Update answers: the step acted on and the process status after."""

    step: str
    action: Literal["retry", "skip", "abort"]
    status: str


class ClockRef(BaseModel):
    """The test clock a process lives on and that clock's time when the process started."""

    clock_id: str
    frozen_time: datetime


class ClockAdvance(BaseModel):
    frozen_time: datetime


class ClockStatus(BaseModel):
    """``settled_time``: the clock time up to which the process has acted on all that is due."""

    clock_id: str | None
    now: datetime
    settled_time: datetime | None


class ProcessView(BaseModel):
    """The generic view every workflow answers to the ``process`` query."""

    process_id: str
    type: ProcessType
    status: str
    customer_id: str | None = None
    steps: list[Step]
    failed_step: FailedStep | None = None
    # The business records the process is about, by kind: {"quote_id": …, "order_id": …}.
    refs: dict[str, str] = Field(default_factory=dict)
