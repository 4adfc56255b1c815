"""Quotes: price, approve or reject, accept (placing the order) or decline."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request, Response

from api import process
from api.deps import AppState, ClientRole, Operator, StateDep, Viewer
from api.idempotency import IDEMPOTENT, idempotent
from domain.errors import NotFound
from systems.quoting import process_input
from workflows.contracts.quote_to_order import (
    AcceptRequest,
    DeclineRequest,
    NoteRequest,
    Quote,
    QuoteCreate,
    initial_quote,
    quote_process_id,
)

router = APIRouter(prefix="/v1/quotes", tags=["quotes"])


@router.post("", status_code=201, response_model=Quote, openapi_extra=IDEMPOTENT)
async def create(body: QuoteCreate, request: Request, who: ClientRole, state: StateDep) -> Response:
    """Price a quote and start its process (approval when the discount needs it); bad input
    is refused before Temporal is needed."""
    erp, settings = state.systems.erp, state.settings

    async def start(make_id: Callable[[str], str]) -> Quote:
        priced, now, clock = await process.price(
            erp, settings, body.customer_id, body.lines, body.discount_pct, body.partner_id
        )
        inp = process_input(
            priced,
            quote_id=make_id("quo"),
            order_id=make_id("ord"),
            created_at=now,
            clock=clock,
            valid_days=body.valid_days,
            partner_id=body.partner_id,
            channel=body.channel,
        )
        quote = initial_quote(inp)
        await process.start(await state.temporal.get(), erp, settings, inp, quote)
        return quote

    return await idempotent(request, who, erp, 201, start)


@router.get("/{quote_id}", response_model=Quote)
async def get(quote_id: str, _: Viewer, state: StateDep) -> Response:
    """A quote, live."""
    try:
        quote = await process.read_quote(state.temporal, state.systems.erp, quote_id)
    except NotFound:
        raise NotFound("quote", quote_id) from None
    return process.answer(quote)


async def _update(
    state: AppState, quote_id: str, name: str, body: object, update_id: str | None = None
) -> Quote:
    # The id first: an order's id is a 404 whether or not Temporal answers.
    pid = quote_process_id(process.own_id("quote", quote_id))
    client = await state.temporal.get()
    return await process.update(
        client, pid, name, body, Quote, update_id, subject=("quote", quote_id)
    )


@router.post("/{quote_id}/approve", response_model=Quote)
async def approve(
    quote_id: str, _: Operator, state: StateDep, body: NoteRequest | None = None
) -> Quote:
    """Approve the quote's discount (operator)."""
    return await _update(state, quote_id, "approve", body or NoteRequest())


@router.post("/{quote_id}/reject", response_model=Quote)
async def reject(
    quote_id: str, _: Operator, state: StateDep, body: NoteRequest | None = None
) -> Quote:
    """Reject the quote (operator)."""
    return await _update(state, quote_id, "reject", body or NoteRequest())


@router.post("/{quote_id}/accept", response_model=Quote, openapi_extra=IDEMPOTENT)
async def accept(
    quote_id: str, body: AcceptRequest, request: Request, who: ClientRole, state: StateDep
) -> Response:
    """Accept the quote: the order is placed at the quoted prices. It creates the order, so
    a retry with the same Idempotency-Key answers the first acceptance again."""

    async def place(make_id: Callable[[str], str]) -> Quote:
        if body.payment == "card_on_file":
            await process.require_card_for_quote(
                state.systems.erp, process.own_id("quote", quote_id)
            )
        # The Update's id follows the key: if Temporal applied it and the answer was lost
        # (the key given back), the retry's Update is the same one, answered again.
        return await _update(state, quote_id, "accept", body, make_id("upd"))

    return await idempotent(request, who, state.systems.erp, 200, place)


@router.post("/{quote_id}/decline", response_model=Quote)
async def decline(
    quote_id: str, _: ClientRole, state: StateDep, body: DeclineRequest | None = None
) -> Quote:
    """Decline the quote."""
    return await _update(state, quote_id, "decline", body or DeclineRequest())
