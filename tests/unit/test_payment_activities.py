"""The payment activities keep no money at the gateway that the ERP does not hold.

Each test runs the real activities against the embedded ERP and the sandbox gateway, on
SQLite and on PostgreSQL.
"""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy.engine import Engine
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.erp import ErpActivities
from activities.faults import Faults
from activities.payments import PaymentActivities
from domain.errors import Conflict
from domain.invoicing import DraftInvoice, InvoiceLine
from systems.erp.embedded import EmbeddedErp
from systems.payments.sandbox import SandboxGateway
from tests.factories import CARD_OK, CARD_TIMEOUT, add_card, customer
from workflows.contracts.activities import (
    ChargeInput,
    IssueInvoiceInput,
    RefundByHandInput,
    RefundInput,
    ReverseInvoiceInput,
)


def _draft(customer_id: str) -> DraftInvoice:
    line = InvoiceLine(
        kind="one_time",
        description="Setup",
        quantity=Decimal(1),
        unit_price=Decimal("100.00"),
        amount=Decimal("100.00"),
    )
    return DraftInvoice(
        customer_id=customer_id,
        currency="EUR",
        issue_date=date(2026, 5, 1),
        due_date=date(2026, 5, 31),
        lines=[line],
        subtotal=Decimal("100.00"),
        tax=Decimal("19.00"),
        total=Decimal("119.00"),
    )


def _attempt(n: int) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=n)
    return env


@dataclasses.dataclass
class Shop:
    erp: EmbeddedErp
    gateway: SandboxGateway
    erp_steps: ErpActivities
    payments: PaymentActivities
    customer_id: str
    invoice_id: str

    def charge(self, step: str = "charge") -> ChargeInput:
        return ChargeInput(
            key=f"q2o-1:{step}:{self.invoice_id}",
            invoice_id=self.invoice_id,
            customer_id=self.customer_id,
        )

    def reverse(self) -> Decimal:
        """Compensation as the order runs it: reverse the invoice, then refund."""
        inp = ReverseInvoiceInput(
            key=f"q2o-1:reverse:{self.invoice_id}", invoice_id=self.invoice_id, reason="abort"
        )
        return _attempt(1).run(self.erp_steps.reverse_invoice, inp).total

    async def refund(self, charge_key: str | None) -> Decimal:
        inp = RefundInput(
            key=f"q2o-1:refund:{self.invoice_id}",
            invoice_id=self.invoice_id,
            charge_key=charge_key,
        )
        result = await _attempt(1).run(self.payments.refund_invoice, inp)
        return result.refunded

    async def held_at_gateway(self) -> Decimal:
        charge = await self.gateway.succeeded_charge(self.charge().key)
        return Decimal(0) if charge is None else charge.amount - charge.refunded


async def _shop(engine: Engine, card: str, gateway: SandboxGateway | None = None) -> Shop:
    erp = EmbeddedErp(engine)
    gw = gateway or SandboxGateway(engine)
    faults = Faults(erp, cache_seconds=0)
    erp_steps = ErpActivities(erp, faults)
    c = customer(erp)
    await add_card(erp, gw, c.id, card)
    inv = _attempt(1).run(
        erp_steps.issue_invoice, IssueInvoiceInput(key="q2o-1:invoice:services", draft=_draft(c.id))
    )
    return Shop(erp, gw, erp_steps, PaymentActivities(gw, erp, faults), c.id, inv.invoice_id)


async def test_a_charge_lost_to_a_timeout_goes_back_when_the_order_is_compensated(
    db_engine: Engine,
) -> None:
    shop = await _shop(db_engine, CARD_TIMEOUT)
    with pytest.raises(ApplicationError, match="timeout"):  # the gateway took the money
        await _attempt(1).run(shop.payments.charge_invoice, shop.charge())
    shop.erp.set_fault("payments", "down")  # every retry fails: the step needs an operator
    for n in range(2, 6):
        with pytest.raises(ApplicationError, match="down"):
            await _attempt(n).run(shop.payments.charge_invoice, shop.charge())
    shop.erp.set_fault("payments", "ok")
    assert await shop.held_at_gateway() == Decimal("119.00")
    assert shop.erp.payments_for_invoice(shop.invoice_id) == []

    shop.reverse()  # the operator aborts: nothing was paid in the ERP, so the invoice is voided
    assert shop.erp.get_invoice(shop.invoice_id).status == "void"
    assert await shop.refund(shop.charge().key) == Decimal("119.00")
    assert await shop.held_at_gateway() == 0
    assert await shop.refund(shop.charge().key) == 0  # a retried step refunds nothing twice
    assert await shop.held_at_gateway() == 0


async def test_a_refund_without_the_charge_key_leaves_the_lost_charge_alone(
    db_engine: Engine,
) -> None:
    """Executions recorded before the charge key was passed replay as they ran."""
    shop = await _shop(db_engine, CARD_TIMEOUT)
    with pytest.raises(ApplicationError):
        await _attempt(1).run(shop.payments.charge_invoice, shop.charge())
    shop.reverse()
    assert await shop.refund(None) == 0
    assert await shop.held_at_gateway() == Decimal("119.00")


async def test_a_payment_landing_while_the_card_is_charged_sends_the_charge_back(
    db_engine: Engine,
) -> None:
    holder: list[Shop] = []

    class TransferArrivesMidCharge(SandboxGateway):
        async def charge(
            self, key: str, token: str, amount: Decimal, currency: str, description: str
        ) -> str:
            shop = holder[0]
            shop.erp.record_payment(
                "api:wire", shop.invoice_id, Decimal("50.00"), "bank_transfer", "w-1"
            )
            return await super().charge(key, token, amount, currency, description)

    shop = await _shop(db_engine, CARD_OK, TransferArrivesMidCharge(db_engine))
    holder.append(shop)
    with pytest.raises(ApplicationError) as refused:
        await _attempt(1).run(shop.payments.charge_invoice, shop.charge())
    assert refused.value.type == "invoice_not_payable"
    assert "119.00 went back to the card" in refused.value.message
    assert await shop.held_at_gateway() == 0
    invoice = shop.erp.get_invoice(shop.invoice_id)
    assert (invoice.status, invoice.amount_paid) == ("open", Decimal("50.00"))
    assert shop.erp.trial_balance("EUR").get("cash") == Decimal("50.00")


async def test_a_charge_retried_after_the_invoice_was_paid_otherwise_goes_back(
    db_engine: Engine,
) -> None:
    shop = await _shop(db_engine, CARD_TIMEOUT)
    with pytest.raises(ApplicationError, match="timeout"):
        await _attempt(1).run(shop.payments.charge_invoice, shop.charge())
    shop.erp.record_payment("api:wire", shop.invoice_id, Decimal("119.00"), "bank_transfer", "w-1")
    result = await _attempt(2).run(shop.payments.charge_invoice, shop.charge())
    # The invoice is paid; the step is done, having applied nothing: its charge went back.
    assert (result.amount, result.payment_id) == (Decimal(0), "")
    assert await shop.held_at_gateway() == 0


async def test_money_paid_by_transfer_asks_an_operator_after_the_card_is_refunded(
    db_engine: Engine,
) -> None:
    shop = await _shop(db_engine, CARD_OK)
    shop.erp.record_payment("api:wire", shop.invoice_id, Decimal("50.00"), "bank_transfer", "w-1")
    await _attempt(1).run(shop.payments.charge_invoice, shop.charge())
    shop.reverse()
    with pytest.raises(ApplicationError) as refused:
        await shop.refund(shop.charge().key)
    assert refused.value.type == "manual_refund_required" and refused.value.non_retryable
    assert "50.00 EUR by bank_transfer (w-1)" in refused.value.message
    assert await shop.held_at_gateway() == 0  # the card part went back before the refusal
    card = [p for p in shop.erp.payments_for_invoice(shop.invoice_id) if p.charge_id]
    assert [p.refunded for p in card] == [Decimal("69.00")]


async def test_a_retried_charge_applies_what_it_took_and_gives_back_what_is_no_longer_due(
    db_engine: Engine,
) -> None:
    """The timed-out attempt took 119.00; a transfer of 50.00 arrived before the retry.
    The retry applies the charge it finds (69.00 of it, what is due) and returns 50.00:
    the customer pays 119.00, not 169.00, and the gateway holds what the ERP records."""
    shop = await _shop(db_engine, CARD_TIMEOUT)
    with pytest.raises(ApplicationError, match="timeout"):
        await _attempt(1).run(shop.payments.charge_invoice, shop.charge())
    shop.erp.record_payment("api:wire", shop.invoice_id, Decimal("50.00"), "bank_transfer", "w")
    result = await _attempt(2).run(shop.payments.charge_invoice, shop.charge())
    assert result.amount == Decimal("69.00")
    assert await shop.held_at_gateway() == Decimal("69.00")
    invoice = shop.erp.get_invoice(shop.invoice_id)
    assert (invoice.status, invoice.amount_paid) == ("paid", Decimal("119.00"))
    assert shop.erp.trial_balance("EUR")["cash"] == Decimal("119.00")
    # A further retry (its answer lost too) changes nothing.
    again = await _attempt(3).run(shop.payments.charge_invoice, shop.charge())
    assert again.payment_id == result.payment_id
    assert await shop.held_at_gateway() == Decimal("69.00")
    # Cancelled later: the card gets back what it paid; the transfer is left to an operator.
    shop.reverse()
    with pytest.raises(ApplicationError, match="by hand"):
        await shop.refund(shop.charge().key)
    assert await shop.held_at_gateway() == Decimal("0.00")


async def test_the_gateway_refuses_a_key_reused_for_another_amount(db_engine: Engine) -> None:
    shop = await _shop(db_engine, CARD_OK)
    token = shop.erp.charge_view(shop.invoice_id, shop.customer_id).card_token
    assert token is not None
    first = await shop.gateway.charge("k-1", token, Decimal("10.00"), "EUR", "x")
    assert await shop.gateway.charge("k-1", token, Decimal("10.00"), "EUR", "x") == first
    with pytest.raises(Conflict, match="another charge"):
        await shop.gateway.charge("k-1", token, Decimal("9.00"), "EUR", "x")


async def test_a_refund_by_hand_is_recorded_once_against_the_money_paid_otherwise(
    db_engine: Engine,
) -> None:
    shop = await _shop(db_engine, CARD_OK)
    for n, amount in ((1, "6.00"), (2, "4.00")):
        shop.erp.record_payment(f"wire-{n}", shop.invoice_id, Decimal(amount), "bank_transfer", "w")
    step = RefundByHandInput(key="q2o-1:refund-by-hand", invoice_id=shop.invoice_id, amount=8)
    for bad in ("11.00", "8.005"):  # more than was paid otherwise; finer than EUR has
        wrong = RefundByHandInput(key=step.key, invoice_id=step.invoice_id, amount=bad)
        with pytest.raises(ApplicationError, match="invalid_input"):
            _attempt(1).run(shop.erp_steps.record_refund_by_hand, wrong)
        assert all(p.refunded == 0 for p in shop.erp.payments_for_invoice(shop.invoice_id))
    for n in (1, 2):  # the retry records nothing twice
        result = _attempt(n).run(shop.erp_steps.record_refund_by_hand, step)
        assert result.refunded == Decimal("8.00")
    refunds = [p.refunded for p in shop.erp.payments_for_invoice(shop.invoice_id)]
    assert sorted(refunds) == [Decimal("2.00"), Decimal("6.00")]
    assert shop.erp.trial_balance("EUR")["cash"] == Decimal("2.00")
