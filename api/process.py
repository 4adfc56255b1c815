"""How the API starts, reads and moves QuoteToOrder processes."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

from fastapi import Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import TemporalProvider
from api.routes.customers import customer_today
from domain.errors import Conflict, InvalidInput, NotFound
from settings import Settings
from systems.ports import Erp
from systems.quoting import PricedRequest, price_request
from telemetry import tag_log
from workflows.contracts.common import ClockAdvance, ClockRef
from workflows.contracts.quote_to_order import (
    LineRequest,
    Order,
    PaymentTerms,
    Quote,
    QuoteToOrderInput,
    order_process_id,
    quote_process_id,
)
from workflows.operable import start_attributes

M = TypeVar("M", bound=BaseModel)
WORKFLOW = "QuoteToOrderWorkflow"


def _price(
    erp: Erp,
    customer_id: str,
    lines: list[LineRequest],
    discount: Decimal,
    approval: Decimal,
    partner_id: str | None,
) -> tuple[PricedRequest, datetime, ClockRef | None]:
    priced = price_request(erp, customer_id, lines, discount, approval, partner_id)
    now = customer_today(erp, priced.customer)
    clock_id = priced.customer.test_clock_id
    return priced, now, ClockRef(clock_id=clock_id, frozen_time=now) if clock_id else None


async def price(
    erp: Erp,
    settings: Settings,
    customer_id: str,
    lines: list[LineRequest],
    discount: Decimal,
    partner_id: str | None = None,
) -> tuple[PricedRequest, datetime, ClockRef | None]:
    """Price a new process's lines and find the time it starts at (the customer's test
    clock's, if it has one) — bad input is refused here, before anything runs."""
    return await run_in_threadpool(
        _price, erp, customer_id, lines, discount, settings.approval_discount, partner_id
    )


def _price_order(
    erp: Erp,
    customer_id: str,
    lines: list[LineRequest],
    approval: Decimal,
    partner_id: str | None,
    payment: PaymentTerms,
) -> tuple[PricedRequest, datetime, ClockRef | None]:
    priced, now, clock = _price(erp, customer_id, lines, Decimal(0), approval, partner_id)
    if payment == "card_on_file":
        require_card(erp, priced.customer.id)
    return priced, now, clock


def require_card(erp: Erp, customer_id: str) -> None:
    """Refuse paying by card for a customer with no card on file (422 at the ``payment``
    field), instead of an order whose charge can only fail."""
    if not erp.has_payment_method(customer_id):
        raise InvalidInput(
            f"customer {customer_id} has no card on file: add one "
            f"(POST /v1/customers/{customer_id}/payment-methods) or pay by invoice",
            loc=("body", "payment"),
        )


async def require_card_for_quote(erp: Erp, quote_id: str) -> None:
    """``require_card`` for the customer of a quote (its read model names it); a quote not
    known here is left for its process to answer."""

    def check() -> None:
        try:
            customer_id = str(erp.get_document("quote", quote_id)["customer_id"])
        except NotFound:
            return
        require_card(erp, customer_id)

    await run_in_threadpool(check)


async def price_order(
    erp: Erp,
    settings: Settings,
    customer_id: str,
    lines: list[LineRequest],
    payment: PaymentTerms,
    partner_id: str | None = None,
) -> tuple[PricedRequest, datetime, ClockRef | None]:
    """Price an order placed directly and, paying by card, check a card is on file (one
    trip to a thread). The process checks and commits the credit itself."""
    return await run_in_threadpool(
        _price_order, erp, customer_id, lines, settings.approval_discount, partner_id, payment
    )


async def start(
    client: Client, erp: Erp, settings: Settings, inp: QuoteToOrderInput, first: Quote | Order
) -> None:
    """Start the process and write its first read model, ``first`` (the process writes
    every later version); a retry that finds it already running changes nothing."""
    tag_log(inp.process_id, inp.customer_id)
    attributes = start_attributes(
        "quote_to_order",
        first.status,
        inp.customer_id,
        float(inp.totals.total),
        inp.clock.clock_id if inp.clock else None,
    )
    inp = inp.model_copy(update={"first_document_saved": True})
    if inp.clock is not None:
        # Before the start: an advance reaches the process even while Temporal's
        # visibility does not list it yet.
        await run_in_threadpool(erp.register_clock_process, inp.clock.clock_id, inp.process_id)
    try:
        await client.start_workflow(
            WORKFLOW,
            inp,
            id=inp.process_id,
            task_queue=settings.task_queue,
            search_attributes=attributes,
        )
    except WorkflowAlreadyStartedError:
        pass
    kind = "quote" if isinstance(first, Quote) else "order"
    # After the start: no read model without a process. Only if absent: the process may
    # already have written a later version.
    await run_in_threadpool(
        partial(
            erp.save_document,
            kind,
            first.id,
            inp.customer_id,
            first.model_dump(mode="json"),
            only_new=True,
        )
    )
    if inp.clock is not None:
        await _catch_up(client, erp, inp.process_id, inp.clock)


async def _catch_up(client: Client, erp: Erp, process_id: str, started: ClockRef) -> None:
    """An advance of the clock between reading its time and starting the process reached
    every process but this one: send it the time it missed."""
    clock = await run_in_threadpool(erp.get_clock, started.clock_id)
    if clock.frozen_time > started.frozen_time:
        try:
            await client.get_workflow_handle(process_id).signal(
                "advance_clock", ClockAdvance(frozen_time=clock.frozen_time)
            )
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:  # ended already: nothing was due
                raise


async def _document(erp: Erp, kind: str, doc_id: str) -> dict[str, Any] | None:
    try:
        return await run_in_threadpool(erp.get_document, kind, doc_id)
    except NotFound:
        return None


async def _live(client: Client, kind: str, doc_id: str, process_id: str, model: type[M]) -> M:
    """The process's own answer, by query — a workflow task, so only when no read model
    exists (its starter stopped between the start and writing the first version)."""
    try:
        value = await client.get_workflow_handle(process_id).query(kind, result_type=model)
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        raise NotFound(kind, doc_id) from None
    if not isinstance(value, model) or getattr(value, "id", None) != doc_id:
        raise NotFound(kind, doc_id)
    return value


async def read(
    temporal: TemporalProvider, erp: Erp, kind: str, doc_id: str, process_id: str, model: type[M]
) -> M:
    """The process's read model, written at every status change, else its live answer.

    Reading the database keeps pollers off the workers."""
    body = await _document(erp, kind, doc_id)
    if body is not None:
        return model.model_validate(body)
    return await _live(await temporal.get(), kind, doc_id, process_id, model)


# The ids of the records a QuoteToOrder process serves, by kind.
PREFIXES = {"quote": "quo_", "order": "ord_"}


def own_id(kind: str, record_id: str) -> str:
    """``record_id`` if it names a record of ``kind``, else a 404: an order's routes must
    not reach a process through its quote's id (nor a quote's through an order's)."""
    if not record_id.startswith(PREFIXES[kind]):
        raise NotFound(kind, record_id)
    return record_id


async def order_process(erp: Erp, order_id: str) -> str:
    """The process of an order: its own, or the quote's it came from."""
    doc = await _document(erp, "order", own_id("order", order_id))
    if doc is None:
        pid, customer = order_process_id(order_id), None
    else:
        pid, customer = str(doc["process_id"]), str(doc["customer_id"])
    tag_log(pid, customer)  # the request's log lines name them from here on
    return pid


def answer(model: BaseModel) -> Response:
    """A model the route has already validated, as its JSON answer. Returned as a model,
    FastAPI would dump it, validate it again against ``response_model`` and serialize it:
    three passes the polled reads (orders, quotes) need not pay for."""
    return Response(model.model_dump_json(), media_type="application/json")


async def read_quote(temporal: TemporalProvider, erp: Erp, quote_id: str) -> Quote:
    pid = quote_process_id(own_id("quote", quote_id))
    return await read(temporal, erp, "quote", quote_id, pid, Quote)


async def read_order(temporal: TemporalProvider, erp: Erp, order_id: str) -> Order:
    pid = order_process_id(own_id("order", order_id))
    return await read(temporal, erp, "order", order_id, pid, Order)


async def update(
    client: Client,
    process_id: str,
    name: str,
    arg: Any,
    result_type: type[M],
    update_id: str | None = None,
    subject: tuple[str, str] | None = None,
) -> M:
    """Send the process an Update and answer its result. A process that has ended is a
    409 and one that never existed a 404 (naming ``subject``, the kind and id the client
    asked for, when given): Temporal says "not found" for both (and, racing the end of a
    run, without saying it completed), so the run is looked up to tell them apart.
    ``update_id`` makes a repeat of the same Update answer the first outcome."""
    handle = client.get_workflow_handle(process_id)
    try:
        args = [] if arg is None else [arg]
        result: M = await handle.execute_update(
            name, args=args, id=update_id, result_type=result_type
        )
        return result
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        try:
            await handle.describe()
        except RPCError as missing:
            if missing.status == RPCStatusCode.NOT_FOUND:
                raise NotFound(*(subject or ("process", process_id))) from None
            raise
        raise Conflict("the process has ended: nothing waits for this") from None
