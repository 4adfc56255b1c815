"""Dependencies of the routes: settings, systems, the Temporal client, the caller's role."""

from __future__ import annotations

import asyncio
import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from temporalio.client import Client

from api.errors import TemporalUnavailable
from clients import TemporalAccess, connect_temporal, prepare_namespace
from domain.errors import SystemUnavailable
from settings import Settings
from systems.ports import Erp
from systems.records import ROLES, Role
from systems.registry import Systems
from telemetry import tag_log
from workflows.contracts.quote_to_order import quote_process_id


class TemporalProvider:
    """Connects lazily and reconnects after a failure, so the API starts without Temporal.

    The first connection also registers o2c's search attributes in the namespace when they
    are missing (as a worker does at start-up): an API started before any worker can start
    processes. A namespace that does not exist is reported as Temporal being unavailable."""

    def __init__(
        self,
        target: str,
        namespace: str,
        *,
        tracing: bool = True,
        access: TemporalAccess | None = None,
    ) -> None:
        self._target, self._namespace, self._tracing = target, namespace, tracing
        self._access = access
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Client:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                try:
                    client = await asyncio.wait_for(
                        connect_temporal(
                            self._target,
                            self._namespace,
                            tracing=self._tracing,
                            access=self._access,
                        ),
                        timeout=5,
                    )
                except (RuntimeError, OSError, TimeoutError) as exc:
                    raise TemporalUnavailable(f"Temporal at {self._target} is unreachable") from exc
                await self._prepare(client)
                self._client = client
            return self._client

    async def _prepare(self, client: Client) -> None:
        try:
            await asyncio.wait_for(
                prepare_namespace(client, self._namespace, self._target), timeout=5
            )
        except SystemUnavailable as exc:
            raise TemporalUnavailable(str(exc)) from exc
        except TimeoutError as exc:
            raise TemporalUnavailable(f"Temporal at {self._target} is unreachable") from exc


@dataclass(frozen=True)
class AppState:
    settings: Settings
    systems: Systems
    temporal: TemporalProvider


@dataclass(frozen=True)
class Principal:
    key_id: str
    role: Role


# Dependencies that do no IO are coroutines: FastAPI runs a plain function dependency on a
# worker thread, a hand-off that cost more than everything else a GET does.
async def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.o2c
    return state


StateDep = Annotated[AppState, Depends(app_state)]


async def _erp(state: StateDep) -> Erp:
    return state.systems.erp


async def _settings(state: StateDep) -> Settings:
    return state.settings


async def _temporal(state: StateDep) -> Client:
    return await state.temporal.get()


ErpDep = Annotated[Erp, Depends(_erp)]
SettingsDep = Annotated[Settings, Depends(_settings)]
TemporalDep = Annotated[Client, Depends(_temporal)]


async def tag_request_log(request: Request) -> None:
    """Log lines of a request about one process or customer carry its ids (the routes that
    find them later, an order's process, tag them then)."""
    params = request.path_params
    process_id = params.get("process_id")
    if "quote_id" in params:
        process_id = quote_process_id(params["quote_id"])
    tag_log(process_id, params.get("customer_id"))


async def principal(
    state: StateDep, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    """The caller, from ``Authorization: Bearer <key>`` (401 when missing or unknown)."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if not authorization or not authorization.lower().startswith("bearer "):
        raise HTTPException(401, "an API key is required: Authorization: Bearer <key>", challenge)
    secret = authorization[7:].strip()
    admin = state.settings.admin_key
    if admin and hmac.compare_digest(secret.encode(), admin.encode()):
        return Principal(key_id="admin", role="admin")
    key = await run_in_threadpool(state.systems.erp.authenticate, secret)
    if key is None:
        raise HTTPException(401, "unknown API key", challenge)
    return Principal(key_id=key.id, role=key.role)


def require(role: Role) -> object:
    """A dependency that lets only callers of ``role`` or above through (else 403)."""

    async def check(who: Annotated[Principal, Depends(principal)]) -> Principal:
        if ROLES.index(who.role) < ROLES.index(role):
            raise HTTPException(403, f"this action needs the {role} role; the key is {who.role}")
        return who

    return Depends(check)


Viewer = Annotated[Principal, require("viewer")]
ClientRole = Annotated[Principal, require("client")]
Operator = Annotated[Principal, require("operator")]
Admin = Annotated[Principal, require("admin")]


async def sandbox_only(state: StateDep) -> None:
    if not state.settings.sandbox:
        raise HTTPException(404, "sandbox features are off (O2C_SANDBOX)")
