"""Connects to Temporal the one way every o2c process does (API, worker, CLI, tests).

Every client uses the pydantic data converter (Decimal, dates and nested models round-trip
exactly) and the OpenTelemetry plugin, so one trace spans API → workflow → activities.
Also registers o2c's typed search attributes, idempotently.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.contrib.opentelemetry import OpenTelemetryPlugin
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from domain.errors import SystemUnavailable
from settings import Settings
from workflows.contracts.common import (
    SA_AMOUNT,
    SA_CUSTOMER_ID,
    SA_NEEDS_ATTENTION,
    SA_PROCESS_TYPE,
    SA_STATUS,
    SA_TEST_CLOCK,
)

log = logging.getLogger("o2c.temporal")

SEARCH_ATTRIBUTES: dict[str, IndexedValueType.ValueType] = {
    SA_PROCESS_TYPE: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    SA_STATUS: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    SA_CUSTOMER_ID: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    SA_NEEDS_ATTENTION: IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
    # NOTE: a Double for range filters in visibility only; amounts are never read back
    # from it — the Decimal lives in the workflow state and the ledger.
    SA_AMOUNT: IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
    SA_TEST_CLOCK: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
}


@dataclass(frozen=True)
class TemporalAccess:
    """How a secured cluster is reached: TLS (True for the system's CAs, or a config with a
    private CA and a client certificate) and an API key."""

    tls: bool | TLSConfig = False
    api_key: str | None = None


def temporal_access(settings: Settings) -> TemporalAccess:
    """The access the settings describe (reads the certificate files they name)."""
    tls: bool | TLSConfig = settings.temporal_uses_tls
    files = (settings.temporal_tls_ca, settings.temporal_tls_cert, settings.temporal_tls_key)
    if tls and any(files):
        ca, cert, key = (path.read_bytes() if path else None for path in files)
        tls = TLSConfig(server_root_ca_cert=ca, client_cert=cert, client_private_key=key)
    return TemporalAccess(tls=tls, api_key=settings.temporal_api_key)


async def connect_temporal(
    target: str,
    namespace: str = "default",
    *,
    tracing: bool = True,
    access: TemporalAccess | None = None,
) -> Client:
    """A client with o2c's data converter and, with ``tracing``, Temporal's OpenTelemetry
    plugin with its own spans: starts, workflow runs, updates and activities (local ones
    too) join the trace of the request that caused them."""
    access = access or TemporalAccess()
    return await Client.connect(
        target,
        namespace=namespace,
        data_converter=pydantic_data_converter,
        plugins=[OpenTelemetryPlugin(add_temporal_spans=True)] if tracing else [],
        tls=access.tls,
        api_key=access.api_key,
    )


async def prepare_namespace(client: Client, namespace: str, target: str) -> None:
    """Register o2c's search attributes the namespace lacks (what a worker and the API do
    when they connect). A cluster that does not let o2c do it is left to its operators
    (deploy/README.md); a namespace that does not exist, or any other refusal, is
    ``SystemUnavailable``."""
    try:
        added = await register_search_attributes(client, namespace)
    except RPCError as exc:
        if exc.status == RPCStatusCode.PERMISSION_DENIED:
            log.warning("cannot check o2c's search attributes: %s", exc.message)
            return
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise SystemUnavailable(
                "temporal", f"namespace {namespace} does not exist at {target}"
            ) from exc
        raise SystemUnavailable("temporal", f"{target}: {exc.message}") from exc
    if added:
        log.info("registered search attributes %s", ", ".join(added))


async def register_search_attributes(client: Client, namespace: str = "default") -> list[str]:
    """Add o2c's search attributes that the namespace lacks; returns the names added."""
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        known = set(existing.custom_attributes) | set(existing.system_attributes)
    except RPCError as exc:  # the time-skipping test server cannot list, only add
        if exc.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        known = set()
    missing = {k: v for k, v in SEARCH_ATTRIBUTES.items() if k not in known}
    if missing:
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
            )
        except RPCError as exc:  # a concurrent registration is fine
            if "already" not in str(exc).lower():
                raise
    return sorted(missing)


async def wait_for_temporal(
    target: str,
    namespace: str,
    timeout: float = 60.0,
    *,
    tracing: bool = True,
    access: TemporalAccess | None = None,
) -> Client:
    """Connect, retrying until ``timeout`` seconds pass (the dev server may be starting);
    ``SystemUnavailable`` when it never answers."""
    deadline = asyncio.get_running_loop().time() + timeout
    told = False
    while True:
        try:
            return await connect_temporal(target, namespace, tracing=tracing, access=access)
        except RuntimeError as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise SystemUnavailable(
                    "temporal", f"{target} did not answer within {timeout:.0f} s ({exc})"
                ) from exc
            if not told:
                log.warning(
                    "Temporal at %s does not answer yet: retrying for %.0f s", target, timeout
                )
                told = True
            await asyncio.sleep(0.5)
