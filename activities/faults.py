"""The sandbox fault switch as activities see it: ``ok``, ``down`` or ``slow`` per system.

Modes live in the ERP (set through ``POST /v1/sandbox/faults``) and are read with a short
cache so a switch reaches every worker within a second without a query per step.
"""

from __future__ import annotations

import threading
import time

from domain.errors import SystemUnavailable
from systems.ports import Erp
from systems.records import FaultMode, SystemName

CACHE_SECONDS = 0.5
# A "slow" system answers after this long: below the activities' start-to-close timeout.
SLOW_SECONDS = 2.0


class Faults:
    """Reads fault modes; ``check`` raises for ``down`` and returns the delay for ``slow``."""

    def __init__(
        self, erp: Erp, enabled: bool = True, cache_seconds: float = CACHE_SECONDS
    ) -> None:
        self._erp = erp
        self._enabled = enabled
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._modes: dict[str, FaultMode] = {}
        self._read_at = float("-inf")

    def mode(self, system: SystemName) -> FaultMode:
        if not self._enabled:
            return "ok"
        with self._lock:
            now = time.monotonic()
            if now - self._read_at >= self._cache_seconds:
                self._modes = {f.system: f.mode for f in self._erp.faults()}
                self._read_at = now
            return self._modes.get(system, "ok")

    def check(self, system: SystemName) -> float:
        """Raise ``SystemUnavailable`` when ``system`` is down; else the delay to add."""
        mode = self.mode(system)
        if mode == "down":
            raise SystemUnavailable(system, "down (sandbox fault)")
        return SLOW_SECONDS if mode == "slow" else 0.0
