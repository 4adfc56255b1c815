"""Payment activities: charge an invoice with the card on file, refund what was paid.

The gateway's idempotency key is the process id + step + invoice, never the attempt: a
charge that timed out after the gateway took the money is retried with the same key and
returns the first charge (the 0259 test card proves it). ERP calls run in a thread.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

from temporalio import activity

from activities.errors import mapped_errors
from activities.faults import Faults
from domain.errors import InvoiceNotPayable
from systems.ports import Erp, PaymentGateway
from systems.records import Invoice
from workflows.contracts.activities import ChargeInput, ChargeResult, RefundInput, RefundResult


class PaymentActivities:
    def __init__(self, gateway: PaymentGateway, erp: Erp, faults: Faults) -> None:
        self._gateway = gateway
        self._erp = erp
        self._faults = faults

    async def _guard(self) -> None:
        delay = await asyncio.to_thread(self._faults.check, "payments")
        if delay:
            await asyncio.sleep(delay)

    def _prepare_charge(self, inp: ChargeInput) -> ChargeResult | tuple[Invoice, str, float]:
        """The ERP side of a charge, in one trip to a thread: the fault switch, then either
        the payment already recorded for a paid invoice, or the invoice, the default
        card's token and the delay a slow gateway adds."""
        delay = self._faults.check("payments")
        view = self._erp.charge_view(inp.invoice_id, inp.customer_id)
        invoice = view.invoice
        if invoice.status == "paid":
            first = view.payments[0] if view.payments else None
            return ChargeResult(
                attempt=activity.info().attempt,
                charge_id=(first.charge_id or "") if first else "",
                payment_id=first.id if first else "",
                amount=invoice.amount_paid,
            )
        if invoice.status != "open":
            raise InvoiceNotPayable(f"invoice {invoice.id} is {invoice.status}")
        if view.card_token is None:
            raise InvoiceNotPayable(f"customer {inp.customer_id} has no card on file")
        return invoice, view.card_token, delay

    @activity.defn(name="payments.charge_invoice")
    @mapped_errors
    async def charge_invoice(self, inp: ChargeInput) -> ChargeResult:
        """Charge the invoice's amount due to the default card; record the payment once."""
        prepared = await asyncio.to_thread(self._prepare_charge, inp)
        if isinstance(prepared, ChargeResult):
            return prepared
        invoice, token, delay = prepared
        if delay:
            await asyncio.sleep(delay)
        charge_id = await self._gateway.charge(
            inp.key, token, invoice.amount_due, invoice.currency, f"Invoice {invoice.number}"
        )
        payment = await asyncio.to_thread(
            self._erp.record_payment,
            inp.key,
            invoice.id,
            invoice.amount_due,
            "card",
            charge_id,
            charge_id,
        )
        return ChargeResult(
            attempt=activity.info().attempt,
            charge_id=charge_id,
            payment_id=payment.id,
            amount=payment.amount,
        )

    @activity.defn(name="payments.refund_invoice")
    @mapped_errors
    async def refund_invoice(self, inp: RefundInput) -> RefundResult:
        """Refund every card payment of the invoice in full, once per payment."""
        await self._guard()
        payments = await asyncio.to_thread(self._erp.payments_for_invoice, inp.invoice_id)
        refunded, ids = Decimal(0), list[str]()
        for p in payments:
            left = p.amount - p.refunded
            if p.charge_id is None or left <= 0:
                continue
            key = f"{inp.key}:{p.id}"
            refund_id = await self._gateway.refund(key, p.charge_id, left)
            await asyncio.to_thread(self._erp.record_refund, key, p.id, left, refund_id)
            refunded += left
            ids.append(refund_id)
        return RefundResult(attempt=activity.info().attempt, refunded=refunded, refund_ids=ids)
