"""Quote and order pricing: line amounts, discount, tax, total, and the approval rule.

Per API.md "Arithmetic": ``amount = quantity × unit_price`` rounded half-up per line;
``subtotal = Σ amount``; ``discount = subtotal × discount_pct``;
``tax = (subtotal − discount) × tax_rate``; ``total = subtotal − discount + tax``, each
derived total rounded once to the currency's minor unit.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel

from domain.errors import CurrencyMismatch, InvalidInput
from domain.money import MAX_MAGNITUDE, Amount, quantize, times

LineKind = Literal["physical", "service", "third_party", "plan"]


class CatalogLine(BaseModel):
    """One sellable item as priced for a customer: price book first, then list price."""

    sku: str | None = None
    plan_code: str | None = None
    kind: LineKind
    name: str
    unit_price: Amount
    currency: str
    vendor: str | None = None
    from_price_book: bool = False


class PricedLine(BaseModel):
    """A quote/order line after pricing (amount rounded once, half-up)."""

    sku: str | None = None
    plan_code: str | None = None
    kind: LineKind
    description: str
    quantity: int
    unit_price: Amount
    amount: Amount
    vendor: str | None = None


class Totals(BaseModel):
    subtotal: Amount
    discount: Amount
    tax: Amount
    total: Amount


def price_line(item: CatalogLine, quantity: int, currency: str) -> PricedLine:
    """Price ``quantity`` of ``item``: ``quantity × unit_price``, half-up to the minor unit."""
    if quantity <= 0:
        raise InvalidInput("quantity must be positive")
    if item.currency != currency:
        raise CurrencyMismatch(currency, item.currency)
    amount = quantize(times(item.unit_price, quantity), currency)
    amount = _bounded(amount, f"{item.name} × {quantity}")
    return PricedLine(
        sku=item.sku,
        plan_code=item.plan_code,
        kind=item.kind,
        description=item.name,
        quantity=quantity,
        unit_price=item.unit_price,
        amount=amount,
        vendor=item.vendor,
    )


def totals(
    amounts: list[Decimal], discount_pct: Decimal, tax_rate: Decimal, currency: str
) -> Totals:
    """Subtotal, discount, tax and total of already rounded line ``amounts``."""
    if not Decimal(0) <= discount_pct <= Decimal(1):
        raise InvalidInput("discount_pct must be between 0 and 1")
    if tax_rate < 0:
        raise InvalidInput("tax_rate must not be negative")
    subtotal = _bounded(quantize(sum(amounts, Decimal(0)), currency), "the subtotal")
    discount = quantize(times(subtotal, discount_pct), currency)
    tax = quantize(times(subtotal - discount, tax_rate), currency)
    total = _bounded(subtotal - discount + tax, "the total")
    return Totals(subtotal=subtotal, discount=discount, tax=tax, total=total)


def _bounded(amount: Decimal, what: str) -> Decimal:
    """Refuse an amount no system of record holds (``MAX_MAGNITUDE``): invalid input, not
    an error of o2c's own."""
    if abs(amount) >= MAX_MAGNITUDE:
        raise InvalidInput(f"{what} comes to {amount}, beyond what o2c can bill")
    return amount


def requires_approval(discount_pct: Decimal, threshold: Decimal) -> bool:
    """A discount strictly above ``threshold`` (``O2C_APPROVAL_DISCOUNT``) needs approval."""
    return discount_pct > threshold
