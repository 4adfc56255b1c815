"""Prices a quote or order request for a customer: the ERP's prices, the domain's arithmetic.

Used by the API before it starts a process, so an unknown customer, SKU or plan is a 4xx
answer and nothing runs; the workflow receives the priced lines.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from pydantic import BaseModel

from domain.money import Amount
from domain.pricing import PricedLine, Totals, price_line, requires_approval, totals
from systems.ports import Erp
from systems.records import CreditView, Customer
from workflows.contracts.activities import CustomerSnapshot
from workflows.contracts.common import ClockRef
from workflows.contracts.quote_to_order import (
    LineRequest,
    PaymentTerms,
    QuoteToOrderInput,
    order_process_id,
    quote_process_id,
)


class PricedRequest(BaseModel):
    customer: Customer
    lines: list[PricedLine]
    totals: Totals
    currency: str
    tax_rate: Amount
    discount_pct: Amount
    requires_approval: bool


def price_request(
    erp: Erp,
    customer_id: str,
    lines: list[LineRequest],
    discount_pct: Decimal,
    approval_discount: Decimal,
    partner_id: str | None = None,
) -> PricedRequest:
    """Price ``lines`` from the customer's price book, then list prices; apply discount and
    the customer's tax rate. Raises ``NotFound`` / ``InvalidInput`` for unknown items (and
    an unknown ``partner_id``)."""
    customer = erp.get_customer(customer_id)
    if partner_id is not None:
        erp.get_partner(partner_id)
    catalog = erp.catalog_lines(customer_id, [(x.sku, x.plan_code) for x in lines])
    priced = [
        price_line(item, req.quantity, customer.currency)
        for item, req in zip(catalog, lines, strict=True)
    ]
    return PricedRequest(
        customer=customer,
        lines=priced,
        totals=totals(
            [x.amount for x in priced], discount_pct, customer.tax_rate, customer.currency
        ),
        currency=customer.currency,
        tax_rate=customer.tax_rate,
        discount_pct=discount_pct,
        requires_approval=requires_approval(discount_pct, approval_discount),
    )


def process_input(
    priced: PricedRequest,
    *,
    quote_id: str | None,
    order_id: str,
    created_at: datetime,
    clock: ClockRef | None = None,
    valid_days: int = 30,
    partner_id: str | None = None,
    channel: str = "api",
    payment: PaymentTerms | None = None,
) -> QuoteToOrderInput:
    """The QuoteToOrder input for a priced request: a quote when ``quote_id`` is set, else an
    order placed directly (``payment`` required)."""
    if quote_id is None and payment is None:
        raise ValueError("an order placed without a quote needs its payment terms")
    return QuoteToOrderInput(
        process_id=quote_process_id(quote_id) if quote_id else order_process_id(order_id),
        customer_id=priced.customer.id,
        quote_id=quote_id,
        order_id=order_id,
        lines=priced.lines,
        totals=priced.totals,
        currency=priced.currency,
        tax_rate=priced.tax_rate,
        discount_pct=priced.discount_pct,
        requires_approval=priced.requires_approval,
        valid_days=valid_days,
        created_at=created_at,
        partner_id=partner_id or priced.customer.partner_id,
        channel=channel,
        payment=payment,
        clock=clock,
        commit_credit=True,
        first_attempt_alone=True,
    )


def credit_snapshot(erp: Erp, customer_id: str, as_of: date, attempt: int = 1) -> CustomerSnapshot:
    """What the credit check decides on: limit, open AR as of ``as_of``, terms and card on
    file, read in one transaction (``attempt``: the step attempt that read it)."""
    return snapshot_of(erp.credit_view(customer_id, as_of), attempt)


def snapshot_of(view: CreditView, attempt: int = 1) -> CustomerSnapshot:
    """The part of a credit view a process keeps (terms, contact, card on file)."""
    customer = view.customer
    return CustomerSnapshot(
        attempt=attempt,
        customer_id=customer.id,
        name=customer.name,
        email=customer.email,
        currency=customer.currency,
        credit_limit=customer.credit_limit,
        open_ar=view.account.open_ar,
        payment_terms_days=customer.payment_terms_days,
        tax_rate=customer.tax_rate,
        has_payment_method=view.has_payment_method,
    )
