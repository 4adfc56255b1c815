"""Benchmark: the embedded ERP's share of one order, call by call, single-threaded.

Runs the ERP calls a service-only order paid by card makes (card on file, credit
commitment, sales order, read-model writes, recipient, invoice, the charge's reads, the
sandbox gateway's charge, the payment) against a fresh SQLite database or ``--url``, and
prints the CPU time each costs per order. The end-to-end benchmark (``bench.orders``) shows
what they cost inside a loaded worker; this one isolates them, so a change to the ERP can
be judged alone.

    python -m bench.erp [--orders 300] [--url postgresql+psycopg://…]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from domain.invoicing import DraftInvoice, InvoiceLine
from systems.db import create_schema, make_engine
from systems.erp.embedded import EmbeddedErp
from systems.payments.sandbox import SandboxGateway
from systems.records import CustomerCreate

T = TypeVar("T")
DAY = date(2026, 5, 1)
DOC = {"id": "", "status": "confirmed", "lines": [{"sku": "SVC", "quantity": 1}] * 3}


class Timings:
    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}

    def __call__(self, name: str, fn: Callable[..., T], *args: Any) -> T:
        start = time.thread_time()
        result = fn(*args)
        self.cpu[name] = self.cpu.get(name, 0.0) + time.thread_time() - start
        return result


def one_order(erp: EmbeddedErp, gateway: SandboxGateway, cid: str, t: Timings) -> None:
    key = uuid.uuid4().hex
    order_id = f"ord_{key}"
    t("read model (x3)", partial(erp.save_document, only_new=True), "order", order_id, cid, DOC)
    t("card on file (API)", erp.has_payment_method, cid)
    commit = partial(erp.commit_credit, f"{key}:credit", cid, order_id, Decimal("11.90"))
    t("credit commitment", commit, "EUR", DAY)
    t("sales order", erp.create_sales_order, f"{key}:so", order_id, cid, Decimal("11.90"), "EUR")
    t("read model (x3)", erp.save_document, "order", order_id, cid, DOC)
    t("e-mail recipient", erp.get_customer, cid)
    net = Decimal("10.00")
    line = InvoiceLine(kind="one_time", description="x", quantity=1, unit_price=net, amount=net)
    draft = DraftInvoice(
        customer_id=cid,
        currency="EUR",
        issue_date=DAY,
        due_date=DAY,
        lines=[line],
        subtotal=net,
        discount=Decimal("0.00"),
        tax=Decimal("1.90"),
        total=Decimal("11.90"),
        order_id=order_id,
    )
    invoice = t("invoice", erp.issue_invoice, f"{key}:inv", draft)
    token = t("charge: invoice+card", erp.charge_view, invoice.id, cid).card_token
    assert token is not None
    charge = gateway.charge(f"{key}:charge", token, invoice.amount_due, "EUR", "bench")
    charge_id = t("gateway charge", asyncio.run, charge)
    t(
        "payment",
        erp.record_payment,
        f"{key}:pay",
        invoice.id,
        invoice.amount_due,
        "card",
        charge_id,
        charge_id,
    )
    t("read model (x3)", erp.save_document, "order", order_id, cid, DOC)


def run(url: str, orders: int) -> dict[str, float]:
    """CPU milliseconds per order of each ERP call, after a warm-up of 20 orders."""
    engine = make_engine(url)
    create_schema(engine)
    erp, gateway = EmbeddedErp(engine), SandboxGateway(engine)
    customer = erp.create_customer(
        CustomerCreate(
            name="Bench Co",
            email="bench@example.com",
            currency="EUR",
            credit_limit=Decimal("100000000.00"),
            tax_rate=Decimal("0.19"),
        )
    )
    token = asyncio.run(gateway.tokenize("4242424242424242", 12, 2035, "123"))
    erp.add_payment_method(customer.id, token.token, token.brand, token.last4, 12, 2035)
    for _ in range(20):
        one_order(erp, gateway, customer.id, Timings())
    timings = Timings()
    for _ in range(orders):
        one_order(erp, gateway, customer.id, timings)
    engine.dispose()
    return {name: cpu / orders * 1000 for name, cpu in timings.cpu.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--url", help="database URL (default: SQLite in a temporary folder)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="o2c-bench-erp-") as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'erp.db'}"
        per_call = run(url, args.orders)
    print(f"o2c ERP bench: {args.orders} orders on {url.split(':', 1)[0]}, CPU per order")
    for name, ms in per_call.items():
        print(f"  {name:<20} {ms:6.2f} ms")
    print(f"  {'total':<20} {sum(per_call.values()):6.2f} ms")


if __name__ == "__main__":
    main()
