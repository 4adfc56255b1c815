"""The o2c HTTP API: a factory that wires settings, systems and Temporal into FastAPI.

``create_app`` takes everything it needs (tests build apps over temp databases or fakes);
``app_from_settings`` builds the real systems — what ``o2c api`` serves.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute
from fastapi.telemetry import TelemetryConfig
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from api import docs, errors, openapi
from api.deps import AppState, TemporalProvider, tag_request_log
from api.guard import EdgeGuard
from api.metrics import Metrics, MetricsMiddleware
from api.routes import (
    catalog,
    console,
    customers,
    invoices,
    orders,
    platform,
    processes,
    quotes,
)
from clients import temporal_access
from settings import Settings
from systems.registry import Systems, build_systems

DESCRIPTION = (
    "Order-to-cash processes as durable workflows: quotes, orders, invoices, payments and "
    "the operations that keep them moving. Authenticate with `Authorization: Bearer <key>`."
)


def _operation_id(route: APIRoute) -> str:
    tag = route.tags[0] if route.tags else "o2c"
    return f"{tag}-{route.name}"


NO_NATIVE_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}


def create_app(settings: Settings, systems: Systems, temporal: TemporalProvider) -> FastAPI:
    app = FastAPI(
        title="o2c",
        version="0.1.0",
        description=DESCRIPTION,
        generate_unique_id_function=_operation_id,
        # Spans come from the OpenTelemetry FastAPI instrumentation, and only when an
        # exporter is set; FastAPI's own telemetry would add a second set on every request.
        telemetry=NO_NATIVE_TELEMETRY,
        dependencies=[Depends(tag_request_log)],
        docs_url=None,  # served by api.docs, with local assets
        redoc_url=None,
    )
    app.state.o2c = AppState(settings=settings, systems=systems, temporal=temporal)
    app.state.metrics = Metrics()
    app.add_middleware(EdgeGuard)  # inside the metrics: refusals are counted too
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    errors.install(app)
    openapi.install(app)
    docs.install(app)
    for module in (customers, catalog, quotes, orders, invoices, processes, platform, console):
        app.include_router(module.router)
    if settings.tracing:
        FastAPIInstrumentor.instrument_app(app)
    return app


def app_from_settings(settings: Settings) -> FastAPI:
    """The API over the configured systems; Temporal is connected on first use."""
    provider = TemporalProvider(
        settings.temporal_target,
        settings.temporal_namespace,
        tracing=settings.tracing,
        access=temporal_access(settings),
    )
    return create_app(settings, build_systems(settings), provider)
