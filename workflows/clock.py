"""The one way a process reads time and waits: the wall clock, or its customer's test clock.

A process whose customer lives on a test clock sees the clock's frozen time; timers become
"wait until the clock passes the deadline", and the clock moves when the API signals an
advance. ``settled_time`` tells the API that the process has acted on everything due up to
that clock time (it is blocked in a wait whose deadline lies beyond it), which is what makes
a clock ``ready``. Deterministic: only ``workflow.now()`` and ``workflow.wait_condition``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from temporalio import workflow

from workflows.contracts.common import ClockRef, ClockStatus


class ProcessClock:
    def __init__(self, ref: ClockRef | None) -> None:
        self.clock_id = ref.clock_id if ref else None
        self._time: datetime | None = ref.frozen_time if ref else None
        self.settled_time: datetime | None = None

    def now(self) -> datetime:
        """The process's current time: the test clock's, else the workflow's."""
        return self._time if self._time is not None else workflow.now()

    def advance(self, frozen_time: datetime) -> None:
        """Move a test clock forward (never back; ignored on the wall clock)."""
        if self._time is not None and frozen_time > self._time:
            self._time = frozen_time

    def status(self) -> ClockStatus:
        return ClockStatus(clock_id=self.clock_id, now=self.now(), settled_time=self.settled_time)

    async def wait(self, condition: Callable[[], bool], deadline: datetime | None = None) -> bool:
        """Wait until ``condition`` holds (True) or the clock reaches ``deadline`` (False)."""
        if self._time is None:
            return await self._wait_wall(condition, deadline)
        while True:
            if condition():
                return True
            if deadline is not None and self._time >= deadline:
                return False
            self.settled_time = self._time
            await workflow.wait_condition(self._moved_since(self._time, condition))

    def _moved_since(self, seen: datetime, condition: Callable[[], bool]) -> Callable[[], bool]:
        return lambda: condition() or self._time != seen

    async def _wait_wall(self, condition: Callable[[], bool], deadline: datetime | None) -> bool:
        if deadline is None:
            await workflow.wait_condition(condition)
            return True
        timeout = (deadline - workflow.now()).total_seconds()
        if timeout <= 0:
            return condition()
        try:
            await workflow.wait_condition(condition, timeout=timeout)
        except TimeoutError:
            return condition()
        return True
