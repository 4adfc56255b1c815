"""Tracing and logging for every o2c process.

Traces: an OpenTelemetry tracer provider with the exporter chosen by ``O2C_OTEL_EXPORTER``
(none, console, OTLP over HTTP); temporalio's plugin and the FastAPI instrumentation feed
it, so one trace spans API → workflow → activities. Logs: every record carries the
``process_id`` and ``customer_id`` of the context it was written in (``log_context``,
``tag_log``), of its own ``extra``, or of the Temporal activity/workflow that wrote it; a
record that names only a process gets the customer last seen with that process in this
program (Temporal's own lines about an activity or a workflow name only the workflow).
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

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


# The customer of each process seen lately (bounded: the least recently seen go first).
KNOWN_PROCESSES = 10_000
_customers: OrderedDict[str, str] = OrderedDict()
_customers_lock = threading.Lock()


def remember_customer(process_id: str, customer_id: str) -> None:
    """Note whose process ``process_id`` is, for records that name only the process."""
    with _customers_lock:
        _customers[process_id] = customer_id
        _customers.move_to_end(process_id)
        while len(_customers) > KNOWN_PROCESSES:
            _customers.popitem(last=False)


def _customer_of(process_id: str) -> str | None:
    with _customers_lock:
        return _customers.get(process_id)


def tag_log(process_id: str | None = None, customer_id: str | None = None) -> None:
    """From here to the end of the current task (an HTTP request, an activity), log
    records carry these ids; None leaves an id as it is."""
    if process_id:
        _process.set(process_id)
    if customer_id:
        _customer.set(customer_id)
    pid, cid = _process.get(), _customer.get()
    if pid and cid:
        remember_customer(pid, cid)


@contextmanager
def log_context(process_id: str | None = None, customer_id: str | None = None) -> Iterator[None]:
    """Within the block, log records carry these ids."""
    if process_id and customer_id:
        remember_customer(process_id, customer_id)
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
        process = getattr(record, "process_id", None) or _process.get() or from_temporal
        customer = getattr(record, "customer_id", None) or _customer.get()
        if process and customer:
            remember_customer(process, customer)
        elif process:
            customer = _customer_of(process)
        record.process_id, record.customer_id = process or "-", customer or "-"
        return True


def setup_logging(settings: Settings) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())


def traces_endpoint(url: str) -> str:
    """``O2C_OTEL_ENDPOINT`` as the URL spans are posted to: a collector's base URL (as in
    ``OTEL_EXPORTER_OTLP_ENDPOINT``) gets the OTLP/HTTP traces path, a URL with a path is
    taken as the traces URL itself."""
    if urlsplit(url).path in ("", "/"):
        return url.rstrip("/") + "/v1/traces"
    return url


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
            OTLPSpanExporter(endpoint=traces_endpoint(settings.otel_endpoint))
            if settings.otel_endpoint
            else OTLPSpanExporter()
        )
        provider.add_span_processor(BatchSpanProcessor(exporter))
