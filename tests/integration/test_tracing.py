"""With an exporter set, one trace spans the API request, the workflow it starts and that
workflow's activities, local and regular; with none, no span is made at all."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.contrib.opentelemetry import create_tracer_provider
from temporalio.testing import WorkflowEnvironment

from api.app import app_from_settings
from clients import connect_temporal
from systems.registry import Systems, build_systems
from tests.fakes.notifier import FakeNotifier
from tests.integration.conftest import ADMIN_KEY, Stack, integration_settings, service_order
from worker import build_worker

pytestmark = pytest.mark.slow

EXPORTED = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def tracer_provider() -> None:
    """Temporal's plugin needs its replay-safe provider; it can be set once per process."""
    provider = create_tracer_provider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTED))
    trace.set_tracer_provider(provider)


@pytest_asyncio.fixture
async def traced(dev_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Stack]:
    # Any exporter turns tracing on.
    settings = integration_settings(dev_env, tmp_path, "traced", otel_exporter="console")
    base = build_systems(settings)
    systems = Systems(erp=base.erp, gateway=base.gateway, notifier=FakeNotifier())
    client = await connect_temporal(settings.temporal_target, tracing=True)
    transport = httpx.ASGITransport(app=app_from_settings(settings))
    async with (
        build_worker(client, systems, settings),
        httpx.AsyncClient(
            transport=transport,
            base_url="http://o2c",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        ) as http,
    ):
        yield Stack(http, systems, settings, dev_env)


async def _place_service_order(stack: Stack) -> str:
    http = stack.http
    product = {
        "sku": "SETUP",
        "name": "Setup",
        "kind": "service",
        "unit_price": "150.00",
        "currency": "EUR",
    }
    assert (await http.post("/v1/products", json=product)).status_code == 201
    customer = {
        "name": "Acme GmbH",
        "email": "billing@acme.example",
        "currency": "EUR",
        "credit_limit": "10000.00",
        "tax_rate": "0.19",
    }
    cid = (await http.post("/v1/customers", json=customer)).json()["id"]
    EXPORTED.clear()
    order = service_order(cid, "invoice")
    r = await http.post("/v1/orders", json=order)
    assert r.status_code == 201, r.text
    oid: str = r.json()["id"]
    await stack.poll(f"/v1/orders/{oid}", lambda o: o["status"] == "completed")
    return oid


def _names(spans: tuple[ReadableSpan, ...], trace_id: int) -> set[str]:
    return {s.name for s in spans if s.context is not None and s.context.trace_id == trace_id}


async def test_one_trace_spans_the_request_the_workflow_and_its_activities(
    traced: Stack,
) -> None:
    await _place_service_order(traced)
    spans = EXPORTED.get_finished_spans()
    post = [s for s in spans if s.name == "POST /v1/orders"]
    assert len(post) == 1 and post[0].context is not None
    names = _names(spans, post[0].context.trace_id)
    assert {
        "StartWorkflow:QuoteToOrderWorkflow",
        "RunWorkflow:QuoteToOrderWorkflow",
        "RunActivity:erp.create_sales_order",  # a local activity
        "RunActivity:erp.issue_invoice",
        "RunActivity:notify.email_customer",  # a regular one
    } <= names, names


async def test_without_an_exporter_no_span_is_made(stack: Stack) -> None:
    assert not stack.settings.tracing
    EXPORTED.clear()
    assert (await stack.http.get("/v1/customers")).status_code == 200
    assert [s.name for s in EXPORTED.get_finished_spans()] == []
