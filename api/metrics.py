"""Prometheus text metrics of the API: requests by method, route and status, and latency."""

from __future__ import annotations

import threading
import time
from collections import defaultdict

from starlette.types import ASGIApp, Message, Receive, Scope, Send

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self._buckets: dict[tuple[str, str], list[int]] = {}
        self._sums: dict[tuple[str, str], float] = defaultdict(float)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(method, route, status)] += 1
            counts = self._buckets.setdefault((method, route), [0] * (len(BUCKETS) + 1))
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    counts[i] += 1
            counts[-1] += 1
            self._sums[(method, route)] += seconds

    def render(self) -> str:
        lines = [
            "# HELP o2c_http_requests_total HTTP requests by method, route and status.",
            "# TYPE o2c_http_requests_total counter",
        ]
        with self._lock:
            for (m, r, s), n in sorted(self._requests.items()):
                lines.append(
                    f'o2c_http_requests_total{{method="{m}",route="{r}",status="{s}"}} {n}'
                )
            lines += [
                "# HELP o2c_http_request_duration_seconds Request latency.",
                "# TYPE o2c_http_request_duration_seconds histogram",
            ]
            for (m, r), counts in sorted(self._buckets.items()):
                labels = f'method="{m}",route="{r}"'
                for bound, n in zip(BUCKETS, counts, strict=False):
                    lines.append(
                        f'o2c_http_request_duration_seconds_bucket{{{labels},le="{bound}"}} {n}'
                    )
                lines.append(
                    f'o2c_http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {counts[-1]}'
                )
                lines.append(
                    f"o2c_http_request_duration_seconds_sum{{{labels}}} {self._sums[(m, r)]:.6f}"
                )
                lines.append(f"o2c_http_request_duration_seconds_count{{{labels}}} {counts[-1]}")
        return "\n".join(lines) + "\n"


class MetricsMiddleware:
    """Counts and times every HTTP request into ``metrics`` (a plain ASGI layer: no
    per-request streams or tasks, unlike ``BaseHTTPMiddleware``)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            self.metrics.observe(scope["method"], path, status, time.perf_counter() - start)
