"""Tracing and logging for every o2c process.

Traces: an OpenTelemetry tracer provider with the exporter chosen by ``O2C_OTEL_EXPORTER``
(none, console, OTLP over HTTP); temporalio's plugin and the FastAPI instrumentation feed
it, so one trace spans API → workflow → activities. Logs: every record carries the
``process_id`` and ``customer_id`` of the context it was written in (``log_context``) or of
the Temporal activity/workflow that wrote it.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from temporalio.contrib.opentelemetry import create_tracer_provider

from settings import Settings

_process: contextvars.ContextVar[str | None] = contextvars.ContextVar("process_id", default=None)
_customer: contextvars.ContextVar[str | None] = contextvars.ContextVar("customer_id", default=None)
FORMAT = (
    "%(asctime)s %(levelname)s %(name)s "
    "[process=%(process_id)s customer=%(customer_id)s] %(message)s"
)


@contextmanager
def log_context(process_id: str | None = None, customer_id: str | None = None) -> Iterator[None]:
    """Within the block, log records carry these ids."""
    t1, t2 = _process.set(process_id), _customer.set(customer_id)
    try:
        yield
    finally:
        _process.reset(t1)
        _customer.reset(t2)


class ContextFilter(logging.Filter):
    """Adds process_id / customer_id from the context or from Temporal's log extras."""

    def filter(self, record: logging.LogRecord) -> bool:
        extra = getattr(record, "temporal_activity", None) or getattr(
            record, "temporal_workflow", None
        )
        from_temporal = extra.get("workflow_id") if isinstance(extra, dict) else None
        record.process_id = (
            getattr(record, "process_id", None) or _process.get() or from_temporal or "-"
        )
        record.customer_id = getattr(record, "customer_id", None) or _customer.get() or "-"
        return True


def setup_logging(settings: Settings) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())


def setup_telemetry(settings: Settings, service_name: str) -> None:
    """Install the tracer provider and logging once per process."""
    setup_logging(settings)
    if not settings.tracing:
        return  # no exporter: no plugin, no instrumentation, no provider needed
    # Temporal's OpenTelemetry plugin needs a replay-safe provider (no spans re-emitted when
    # a workflow replays).
    provider = create_tracer_provider(resource=Resource.create({"service.name": service_name}))
    trace.set_tracer_provider(provider)
    if settings.otel_exporter == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = (
            OTLPSpanExporter(endpoint=settings.otel_endpoint)
            if settings.otel_endpoint
            else OTLPSpanExporter()
        )
        provider.add_span_processor(BatchSpanProcessor(exporter))
