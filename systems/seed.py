"""Demo data for ``make run``: created once, so a second start changes nothing.

Each part is recorded as soon as it is made and the whole is marked done last, so a seed
stopped half way (Ctrl-C while ``make run`` starts) is finished by the next one; catalog
entries already there are kept. A part stopped between being made and being recorded is
made again, as it can be by two seeds running at once: at worst a second demo customer or
card, never a seed that cannot finish."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial

from domain.errors import Conflict
from systems.ports import Erp
from systems.records import CustomerCreate, PlanCreate, PriceItem, ProductCreate, UsageCharge
from systems.registry import Systems

SCOPE, KEY = "system:seed", "demo-v1"
EUR, VAT = "EUR", Decimal("0.19")
# The demo customers by the role they play in the README's tour.
CUSTOMERS = {
    "card_on_file": CustomerCreate(
        name="Acme GmbH",
        email="billing@acme.example",
        currency=EUR,
        credit_limit=Decimal("50000.00"),
        tax_rate=VAT,
    ),
    "low_credit": CustomerCreate(
        name="Small Shop",
        email="owner@smallshop.example",
        currency=EUR,
        credit_limit=Decimal("200.00"),
        tax_rate=VAT,
    ),
    "invoice_terms": CustomerCreate(
        name="Globex Ltd",
        email="ap@globex.example",
        currency=EUR,
        credit_limit=Decimal("20000.00"),
        payment_terms_days=45,
        tax_rate=VAT,
    ),
}


@dataclass
class SeedReport:
    created: bool
    customers: dict[str, str] = field(default_factory=dict)


async def seed_demo(systems: Systems) -> SeedReport:
    """Customers (one with a card on file), products with stock, a plan, a price book."""
    erp = systems.erp
    done = erp.idempotency_get(SCOPE, KEY)
    if done is not None:
        return SeedReport(created=False, customers=json.loads(done[2]))
    for p in (
        ProductCreate(
            sku="WIDGET-1",
            name="Widget",
            kind="physical",
            unit_price=Decimal("19.99"),
            currency="EUR",
            stock=100,
        ),
        ProductCreate(
            sku="GADGET-2",
            name="Gadget",
            kind="physical",
            unit_price=Decimal("249.00"),
            currency="EUR",
            stock=5,
        ),
        ProductCreate(
            sku="SETUP",
            name="Onboarding service",
            kind="service",
            unit_price=Decimal("150.00"),
            currency="EUR",
        ),
        ProductCreate(
            sku="LICENSE-X",
            name="Partner licence",
            kind="third_party",
            unit_price=Decimal("80.00"),
            currency="EUR",
            vendor="Vendor X",
        ),
    ):
        _unless_exists(partial(erp.create_product, p))
    _unless_exists(
        lambda: erp.create_plan(
            PlanCreate(
                code="PRO-M",
                name="Pro monthly",
                currency="EUR",
                interval="month",
                price=Decimal("49.00"),
                usage=[
                    UsageCharge(metric="api_calls", model="per_unit", unit_price=Decimal("0.002"))
                ],
            )
        )
    )
    ids = {role: await _once(erp, role, _customer(erp, data)) for role, data in CUSTOMERS.items()}
    acme = ids["card_on_file"]

    async def card() -> str:
        token = await systems.gateway.tokenize("4242424242424242", 12, 2035, "123")
        erp.add_payment_method(acme, token.token, token.brand, token.last4, 12, 2035)
        return token.token

    await _once(erp, "card_on_file:card", card)
    erp.set_prices(acme, [PriceItem(sku="WIDGET-1", unit_price=Decimal("17.50"))])
    erp.idempotency_put(SCOPE, KEY, "", 200, json.dumps(ids))
    return SeedReport(created=True, customers=ids)


def _unless_exists(create: Callable[[], object]) -> None:
    """Create a catalog entry; one there already (an earlier, stopped seed) is kept."""
    with suppress(Conflict):
        create()


def _customer(erp: Erp, data: CustomerCreate) -> Callable[[], Awaitable[str]]:
    async def create() -> str:
        return erp.create_customer(data).id

    return create


async def _once(erp: Erp, part: str, make: Callable[[], Awaitable[str]]) -> str:
    """The id a part of the seed made, making it the first time: its record says so."""
    key = f"{KEY}:{part}"
    done = erp.idempotency_get(SCOPE, key)
    if done is None:
        done = erp.idempotency_put(SCOPE, key, "", 200, await make())
    return done[2]
