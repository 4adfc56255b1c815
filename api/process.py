"""How the API starts, reads and moves QuoteToOrder processes."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.routes.customers import customer_today
from domain.errors import NotFound
from settings import Settings
from systems.ports import Erp
from systems.quoting import PricedRequest
from workflows.contracts.common import ClockRef
from workflows.contracts.quote_to_order import (
    Order,
    Quote,
    QuoteToOrderInput,
    order_process_id,
    quote_process_id,
)
from workflows.operable import (
    SA_AMOUNT_KEY,
    SA_ATTENTION_KEY,
    SA_CLOCK_KEY,
    SA_CUSTOMER_KEY,
    SA_STATUS_KEY,
    SA_TYPE_KEY,
)

M = TypeVar("M", bound=BaseModel)
WORKFLOW = "QuoteToOrderWorkflow"


def clock_of(erp: Erp, priced: PricedRequest) -> tuple[Any, ClockRef | None]:
    """The time a new process starts at, and its test clock if the customer has one."""
    now = customer_today(erp, priced.customer)
    clock_id = priced.customer.test_clock_id
    return now, ClockRef(clock_id=clock_id, frozen_time=now) if clock_id else None


async def start(client: Client, settings: Settings, inp: QuoteToOrderInput, status: str) -> None:
    """Start the process; a retry that finds it already running changes nothing."""
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(SA_TYPE_KEY, "quote_to_order"),
        SearchAttributePair(SA_STATUS_KEY, status),
        SearchAttributePair(SA_CUSTOMER_KEY, inp.customer_id),
        SearchAttributePair(SA_ATTENTION_KEY, False),
        SearchAttributePair(SA_AMOUNT_KEY, float(inp.totals.total)),
    ]
    if inp.clock:
        pairs.append(SearchAttributePair(SA_CLOCK_KEY, inp.clock.clock_id))
    try:
        await client.start_workflow(
            WORKFLOW,
            inp,
            id=inp.process_id,
            task_queue=settings.task_queue,
            search_attributes=TypedSearchAttributes(pairs),
        )
    except WorkflowAlreadyStartedError:
        return


async def read(
    client: Client, erp: Erp, kind: str, doc_id: str, process_id: str, model: type[M]
) -> M:
    """The process's read model, written at every status change; the live query only
    while the process has not written it yet (it answers in milliseconds after start).

    Reading the database keeps pollers off the workers: a query costs a workflow task."""
    try:
        body = await run_in_threadpool(erp.get_document, kind, doc_id)
        return model.model_validate(body)
    except NotFound:
        pass
    try:
        value = await client.get_workflow_handle(process_id).query(kind, result_type=model)
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        raise NotFound(kind, doc_id) from None
    if not isinstance(value, model):
        raise NotFound(kind, doc_id)
    return value


async def quote_handle(client: Client, quote_id: str) -> WorkflowHandle[Any, Any]:
    return client.get_workflow_handle(quote_process_id(quote_id))


async def order_process(erp: Erp, order_id: str) -> str:
    """The process of an order: its own, or the quote's it came from."""
    try:
        doc = await run_in_threadpool(erp.get_document, "order", order_id)
        return str(doc["process_id"])
    except NotFound:
        return order_process_id(order_id)


async def read_quote(client: Client, erp: Erp, quote_id: str) -> Quote:
    return await read(client, erp, "quote", quote_id, quote_process_id(quote_id), Quote)


async def read_order(client: Client, erp: Erp, order_id: str) -> Order:
    pid = await order_process(erp, order_id)
    try:
        return await read(client, erp, "order", order_id, pid, Order)
    except NotFound:
        raise NotFound("order", order_id) from None
