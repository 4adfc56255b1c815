"""The credit check: does an order fit within the customer's credit limit?"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel

from domain.money import Amount


class CreditDecision(BaseModel):
    approved: bool
    open_ar: Amount
    order_total: Amount
    credit_limit: Amount
    shortfall: Amount

    @property
    def reason(self) -> str:
        return (
            f"open AR {self.open_ar} + order {self.order_total} exceeds "
            f"credit limit {self.credit_limit} by {self.shortfall}"
        )


def check_credit(open_ar: Decimal, order_total: Decimal, credit_limit: Decimal) -> CreditDecision:
    """Hold the order when open AR plus its total is above the limit (equal passes)."""
    exposure = open_ar + order_total
    shortfall = max(exposure - credit_limit, Decimal(0))
    return CreditDecision(
        approved=exposure <= credit_limit,
        open_ar=open_ar,
        order_total=order_total,
        credit_limit=credit_limit,
        shortfall=shortfall,
    )
