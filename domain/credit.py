"""The credit check: does an order fit within the customer's credit limit?

A customer's exposure is what it owes (open AR) plus what it has ordered and not yet been
invoiced for (its other accepted orders): an order is approved when that exposure plus the
order's own total stays within the limit (equal passes).
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel

from domain.money import Amount


class CreditDecision(BaseModel):
    approved: bool
    open_ar: Amount
    open_orders: Amount = Decimal("0")
    order_total: Amount
    credit_limit: Amount
    shortfall: Amount

    @property
    def reason(self) -> str:
        orders = f" + open orders {self.open_orders}" if self.open_orders else ""
        return (
            f"open AR {self.open_ar}{orders} + order {self.order_total} exceeds "
            f"credit limit {self.credit_limit} by {self.shortfall}"
        )


def check_credit(
    open_ar: Decimal,
    order_total: Decimal,
    credit_limit: Decimal,
    open_orders: Decimal = Decimal(0),
) -> CreditDecision:
    """Hold the order when open AR, the customer's open (accepted, not yet invoiced) orders
    and its own total together are above the limit (equal passes)."""
    exposure = open_ar + open_orders + order_total
    shortfall = max(exposure - credit_limit, Decimal(0))
    return CreditDecision(
        approved=exposure <= credit_limit,
        open_ar=open_ar,
        open_orders=open_orders,
        order_total=order_total,
        credit_limit=credit_limit,
        shortfall=shortfall,
    )
