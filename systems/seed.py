"""Demo data for ``make run``: created once, so a second start changes nothing."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal

from systems.records import CustomerCreate, PlanCreate, PriceItem, ProductCreate, UsageCharge
from systems.registry import Systems

SCOPE, KEY = "system:seed", "demo-v1"


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
        erp.create_product(p)
    erp.create_plan(
        PlanCreate(
            code="PRO-M",
            name="Pro monthly",
            currency="EUR",
            interval="month",
            price=Decimal("49.00"),
            usage=[UsageCharge(metric="api_calls", model="per_unit", unit_price=Decimal("0.002"))],
        )
    )
    report = SeedReport(created=True)
    acme = erp.create_customer(
        CustomerCreate(
            name="Acme GmbH",
            email="billing@acme.example",
            currency="EUR",
            credit_limit=Decimal("50000.00"),
            tax_rate=Decimal("0.19"),
        )
    )
    token = await systems.gateway.tokenize("4242424242424242", 12, 2035, "123")
    erp.add_payment_method(acme.id, token.token, token.brand, token.last4, 12, 2035)
    erp.set_prices(acme.id, [PriceItem(sku="WIDGET-1", unit_price=Decimal("17.50"))])
    small = erp.create_customer(
        CustomerCreate(
            name="Small Shop",
            email="owner@smallshop.example",
            currency="EUR",
            credit_limit=Decimal("200.00"),
            tax_rate=Decimal("0.19"),
        )
    )
    terms = erp.create_customer(
        CustomerCreate(
            name="Globex Ltd",
            email="ap@globex.example",
            currency="EUR",
            credit_limit=Decimal("20000.00"),
            payment_terms_days=45,
            tax_rate=Decimal("0.19"),
        )
    )
    report.customers = {"card_on_file": acme.id, "low_credit": small.id, "invoice_terms": terms.id}
    erp.idempotency_put(SCOPE, KEY, "", 200, json.dumps(report.customers))
    return report
