"""Operations: list processes from visibility, read one, retry / skip / abort its step."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from temporalio.service import RPCError, RPCStatusCode

from api import process
from api.deps import Operator, SettingsDep, TemporalDep, Viewer
from domain.errors import InvalidInput
from workflows.contracts.common import (
    SA_CUSTOMER_ID,
    SA_NEEDS_ATTENTION,
    SA_PROCESS_TYPE,
    SA_STATUS,
    AbortRequest,
    FailedStep,
    OperatorAck,
    ProcessType,
    ProcessView,
    SkipRequest,
    Step,
)
from workflows.contracts.quote_to_order import OrderStatus, QuoteStatus
from workflows.operable import SA_ATTENTION_KEY, SA_CUSTOMER_KEY, SA_STATUS_KEY, SA_TYPE_KEY

# The statuses a process can be listed by: every process type's own (a new process type
# adds its statuses here), ``needs_attention`` among them.
ProcessStatus = Literal[QuoteStatus, OrderStatus]

router = APIRouter(prefix="/v1/processes", tags=["processes"])


class ProcessSummary(BaseModel):
    process_id: str
    type: str | None
    status: str | None
    customer_id: str | None
    started_at: datetime
    needs_attention: bool


class ProcessPage(BaseModel):
    data: list[ProcessSummary]
    next_cursor: str | None


class ProcessDetail(BaseModel):
    process_id: str
    type: str
    status: str
    customer_id: str | None
    steps: list[Step]
    failed_step: FailedStep | None
    history_length: int
    temporal_ui_url: str | None = Field(
        description="the process in the Temporal UI; null when its address is not known"
    )
    refs: dict[str, str] = Field(
        default_factory=dict,
        description="the records the process is about, by kind: quote_id, order_id",
    )


def _quote(value: str, param: str) -> str:
    if not value or any(c in value for c in "'\"\\"):
        raise InvalidInput(f"invalid filter value: {value!r}", ("query", param))
    return f"'{value}'"


def visibility_query(
    type_: ProcessType | None, status: ProcessStatus | None, customer_id: str | None
) -> str:
    """The Temporal visibility query for the filters of ``GET /v1/processes``."""
    parts = [f"{SA_PROCESS_TYPE} IS NOT NULL"]
    if type_:
        parts.append(f"{SA_PROCESS_TYPE} = {_quote(type_, 'type')}")
    if status == "needs_attention":
        parts.append(f"{SA_NEEDS_ATTENTION} = true")
    elif status:
        parts.append(f"{SA_STATUS} = {_quote(status, 'status')}")
    if customer_id:
        parts.append(f"{SA_CUSTOMER_ID} = {_quote(customer_id, 'customer_id')}")
    return " AND ".join(parts)


@router.get("", response_model=ProcessPage)
async def list_(
    _: Viewer,
    client: TemporalDep,
    type: ProcessType | None = None,  # noqa: A002
    status: ProcessStatus | None = None,
    customer_id: str | None = None,
    limit: int = Query(50, ge=1, le=100),
    cursor: str | None = None,
) -> ProcessPage:
    """Processes from Temporal visibility (eventually consistent)."""
    token = _decode(cursor) if cursor else None
    it = client.list_workflows(
        visibility_query(type, status, customer_id), page_size=limit, next_page_token=token
    )
    try:
        await it.fetch_next_page()
    except RPCError as exc:
        if token is not None and exc.status in (
            RPCStatusCode.INVALID_ARGUMENT,
            RPCStatusCode.UNKNOWN,
        ):
            raise InvalidInput("invalid cursor", ("query", "cursor")) from exc
        raise
    data = [_summary(wf) for wf in it.current_page or []]
    nxt = it.next_page_token
    return ProcessPage(data=data, next_cursor=_encode(nxt) if nxt else None)


# Visibility's page tokens travel inside an opaque cursor with a check digest, so a cursor
# this API did not hand out is refused here (422) instead of puzzling Temporal.
_CURSOR_KEY = b"o2c/processes/cursor"
_DIGEST = 8


def _digest(token: bytes) -> bytes:
    return hashlib.blake2b(token, digest_size=_DIGEST, key=_CURSOR_KEY).digest()


def _encode(token: bytes) -> str:
    return base64.urlsafe_b64encode(token + _digest(token)).decode().rstrip("=")


def _decode(cursor: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except ValueError as exc:
        raise InvalidInput("invalid cursor", ("query", "cursor")) from exc
    token, digest = raw[:-_DIGEST], raw[-_DIGEST:]
    if not token or not hmac.compare_digest(digest, _digest(token)):
        raise InvalidInput("invalid cursor", ("query", "cursor"))
    return token


def _summary(wf: Any) -> ProcessSummary:
    sa = wf.typed_search_attributes
    return ProcessSummary(
        process_id=wf.id,
        type=sa.get(SA_TYPE_KEY),
        status=sa.get(SA_STATUS_KEY),
        customer_id=sa.get(SA_CUSTOMER_KEY),
        started_at=wf.start_time,
        needs_attention=bool(sa.get(SA_ATTENTION_KEY)),
    )


@router.get("/{process_id}", response_model=ProcessDetail)
async def get(
    process_id: str, _: Viewer, client: TemporalDep, settings: SettingsDep
) -> ProcessDetail:
    """A process: its status, timeline and the step waiting for an operator."""
    handle = client.get_workflow_handle(process_id)
    view = await handle.query("process", result_type=ProcessView)
    desc = await handle.describe()
    return ProcessDetail(
        **view.model_dump(),
        history_length=desc.history_length,
        temporal_ui_url=(
            f"{ui}/namespaces/{settings.temporal_namespace}/workflows/{process_id}"
            if (ui := settings.temporal_ui)
            else None
        ),
    )


@router.post("/{process_id}/retry", response_model=OperatorAck)
async def retry(process_id: str, _: Operator, client: TemporalDep) -> OperatorAck:
    """Run the failed step again."""
    return await process.update(client, process_id, "retry", None, OperatorAck)


@router.post("/{process_id}/skip", response_model=OperatorAck)
async def skip(
    process_id: str, _: Operator, client: TemporalDep, body: SkipRequest | None = None
) -> OperatorAck:
    """Mark the failed step done with the given result and continue."""
    return await process.update(client, process_id, "skip", body or SkipRequest(), OperatorAck)


@router.post("/{process_id}/abort", response_model=OperatorAck)
async def abort(
    process_id: str, body: AbortRequest, _: Operator, client: TemporalDep
) -> OperatorAck:
    """Compensate what the process did and end it (409 when what it did cannot be
    compensated, such as an order whose goods have shipped)."""
    return await process.update(client, process_id, "abort", body, OperatorAck)
