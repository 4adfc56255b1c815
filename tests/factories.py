"""Builders of business records for tests: one call, sensible defaults, exact values."""

from __future__ import annotations

from decimal import Decimal

from systems.ports import Erp, PaymentGateway
from systems.records import Customer, CustomerCreate, ProductCreate

CARD_OK = "4242424242424242"
CARD_DECLINED = "4000000000000002"
CARD_INSUFFICIENT = "4000000000009995"
CARD_FLAKY = "4000000000000119"
CARD_TIMEOUT = "4000000000000259"


def customer(
    erp: Erp,
    *,
    credit_limit: str = "100000.00",
    tax_rate: str = "0.19",
    terms: int = 30,
    clock_id: str | None = None,
    name: str = "Acme GmbH",
) -> Customer:
    return erp.create_customer(
        CustomerCreate(
            name=name,
            email="billing@acme.example",
            currency="EUR",
            credit_limit=Decimal(credit_limit),
            payment_terms_days=terms,
            tax_rate=Decimal(tax_rate),
            test_clock_id=clock_id,
        )
    )


async def add_card(
    erp: Erp, gateway: PaymentGateway, customer_id: str, number: str = CARD_OK
) -> str:
    """Tokenise ``number`` at the gateway and make it the customer's default method."""
    token = await gateway.tokenize(number, 12, 2030, "123")
    pm = erp.add_payment_method(customer_id, token.token, token.brand, token.last4, 12, 2030)
    return pm.id


def catalog(erp: Erp) -> None:
    """WIDGET-1 (physical, 10 in stock, 19.99) and SETUP (service, 150.00)."""
    erp.create_product(
        ProductCreate(
            sku="WIDGET-1",
            name="Widget",
            kind="physical",
            unit_price=Decimal("19.99"),
            currency="EUR",
            stock=10,
        )
    )
    erp.create_product(
        ProductCreate(
            sku="SETUP",
            name="Setup service",
            kind="service",
            unit_price=Decimal("150.00"),
            currency="EUR",
        )
    )
