"""The API against a Temporal namespace no worker has prepared yet."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from google.protobuf.duration_pb2 import Duration
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.testing import WorkflowEnvironment

import cli
from api.app import create_app
from api.deps import TemporalProvider
from clients import SEARCH_ATTRIBUTES
from devrunner import check_temporal
from settings import Settings
from systems.registry import build_systems
from tests.integration.conftest import ADMIN_KEY, integration_settings, service_order

pytestmark = pytest.mark.slow


def _api(dev_env: WorkflowEnvironment, tmp_path: Path, namespace: str) -> TestClient:
    settings = integration_settings(dev_env, tmp_path, "api-ns", temporal_namespace=namespace)
    provider = TemporalProvider(settings.temporal_target, namespace, tracing=False)
    client = TestClient(create_app(settings, build_systems(settings), provider))
    client.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
    return client


async def test_an_api_started_before_any_worker_registers_the_search_attributes(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    namespace = f"o2c-fresh-{uuid.uuid4().hex[:8]}"
    await dev_env.client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=namespace, workflow_execution_retention_period=Duration(seconds=86400)
        )
    )
    with _api(dev_env, tmp_path, namespace) as api:
        r = api.post(
            "/v1/products",
            json={
                "sku": "SETUP",
                "name": "Setup",
                "kind": "service",
                "unit_price": "150.00",
                "currency": "EUR",
            },
        )
        assert r.status_code == 201, r.text
        customer = {
            "name": "Early Co",
            "email": "early@example.com",
            "currency": "EUR",
            "credit_limit": "1000.00",
        }
        cid = api.post("/v1/customers", json=customer).json()["id"]
        assert api.get("/readyz").status_code == 200
        r = api.post("/v1/orders", json=service_order(cid, "invoice"))
        assert r.status_code == 201, r.text
        assert api.get("/v1/processes", params={"customer_id": cid}).status_code == 200
        for status in ("needs_attention", "credit_hold", "pending_approval"):
            assert api.get("/v1/processes", params={"status": status}).status_code == 200
        r = api.get("/v1/processes", params={"status": "bogus"})
        assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["query", "status"]
    listed = await dev_env.client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    assert set(SEARCH_ATTRIBUTES) <= set(listed.custom_attributes)


def test_a_namespace_that_does_not_exist_makes_the_api_not_ready(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    with _api(dev_env, tmp_path, "o2c-no-such-namespace") as api:
        r = api.get("/readyz")
        assert r.status_code == 503
        assert r.json()["temporal"].startswith("unavailable")


def test_a_temporal_address_of_a_real_frontend_passes_the_start_up_probe(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    target = dev_env.client.service_client.config.target_host
    check_temporal(Settings(data_dir=tmp_path, temporal_address=target))  # no refusal


def test_a_worker_set_to_a_namespace_that_does_not_exist_says_so_in_one_line(
    dev_env: WorkflowEnvironment,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("O2C_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("O2C_TEMPORAL_ADDRESS", dev_env.client.service_client.config.target_host)
    monkeypatch.setenv("O2C_TEMPORAL_NAMESPACE", "o2c-no-such-namespace")
    assert cli.main(["worker"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("o2c: temporal: namespace o2c-no-such-namespace does not exist")
    assert not any("Traceback" in line for line in err)
