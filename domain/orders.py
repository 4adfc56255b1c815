"""The order split: what of an order ships, what is a service, what starts a subscription.

Physical lines become one shipment (invoiced when shipped); services and third-party
charges become service orders (invoiced at confirmation); plan lines become subscriptions.
"""

from __future__ import annotations

from pydantic import BaseModel

from domain.pricing import PricedLine


class OrderSplit(BaseModel):
    physical: list[PricedLine]
    services: list[PricedLine]
    plans: list[PricedLine]

    @property
    def stock_needed(self) -> dict[str, int]:
        """Units per SKU that the order must reserve."""
        need: dict[str, int] = {}
        for line in self.physical:
            assert line.sku is not None
            need[line.sku] = need.get(line.sku, 0) + line.quantity
        return need


def split_order(lines: list[PricedLine]) -> OrderSplit:
    """Partition ``lines`` by how they are fulfilled, keeping their order."""
    return OrderSplit(
        physical=[x for x in lines if x.kind == "physical"],
        services=[x for x in lines if x.kind in ("service", "third_party")],
        plans=[x for x in lines if x.kind == "plan"],
    )
