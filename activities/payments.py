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
from domain.errors import InvalidInput, InvoiceNotPayable, ManualRefundRequired
from systems.ports import Erp, PaymentGateway
from systems.records import ChargeView, GatewayCharge, Invoice
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

    def _prepare_charge(self, inp: ChargeInput) -> ChargeView | tuple[Invoice, str, float]:
        """The ERP side of a charge, in one trip to a thread: the fault switch, then either
        the view of a paid invoice (with its payments), or the invoice, the default card's
        token and the delay a slow gateway adds."""
        delay = self._faults.check("payments")
        view = self._erp.charge_view(inp.invoice_id, inp.customer_id)
        invoice = view.invoice
        if invoice.status == "paid":
            return view
        if invoice.status != "open":
            raise InvoiceNotPayable(f"invoice {invoice.id} is {invoice.status}")
        if view.card_token is None:
            raise InvoiceNotPayable(f"customer {inp.customer_id} has no card on file")
        return invoice, view.card_token, delay

    @activity.defn(name="payments.charge_invoice")
    @mapped_errors
    async def charge_invoice(self, inp: ChargeInput) -> ChargeResult:
        """Charge the invoice's amount due to the default card; record the payment once.

        An invoice that stopped being payable while the charge ran (paid, voided or
        credited by other means) is refused, and a charge the gateway made for this key
        goes back to the card: no money stays at the gateway without a payment in the ERP.
        """
        try:
            prepared = await asyncio.to_thread(self._prepare_charge, inp)
        except InvoiceNotPayable:
            await self._return_unapplied(inp.key, inp.invoice_id)
            raise
        if isinstance(prepared, ChargeView):
            # Paid: by this key's charge (a retry), or by other means since an earlier
            # attempt charged and lost its answer.
            charge = await self._gateway.succeeded_charge(inp.key)
            await self._give_back(inp.key, inp.invoice_id, charge)
            mine = [p for p in prepared.payments if charge and p.charge_id == charge.charge_id]
            paid = mine[0] if mine else None
            return ChargeResult(
                attempt=activity.info().attempt,
                charge_id=paid.charge_id or "" if paid else "",
                payment_id=paid.id if paid else "",
                amount=paid.amount if paid else Decimal(0),
            )
        invoice, token, delay = prepared
        if delay:
            await asyncio.sleep(delay)
        due = invoice.amount_due
        earlier = await self._gateway.succeeded_charge(inp.key)
        if earlier is None:
            charge_id = await self._gateway.charge(
                inp.key, token, due, invoice.currency, f"Invoice {invoice.number}"
            )
            taken = due
        else:
            # An earlier attempt charged and lost its answer: that charge is applied, even
            # if less is due now (paid in part by other means since); the rest goes back.
            charge_id, taken = earlier.charge_id, earlier.amount - earlier.refunded
            if taken <= 0:
                raise InvoiceNotPayable(f"the charge {charge_id} of this step went back")
        try:
            payment = await asyncio.to_thread(
                self._erp.record_payment,
                inp.key,
                invoice.id,
                min(taken, due),
                "card",
                charge_id,
                charge_id,
            )
        except InvoiceNotPayable as refused:
            refunded, _ = await self._return_unapplied(inp.key, inp.invoice_id)
            raise InvoiceNotPayable(
                f"{refused.message}; the card charge of {refunded} went back to the card"
            ) from refused
        if taken > payment.amount:
            charge = earlier or await self._gateway.succeeded_charge(inp.key)
            await self._give_back(inp.key, inp.invoice_id, charge)
        return ChargeResult(
            attempt=activity.info().attempt,
            charge_id=charge_id,
            payment_id=payment.id,
            amount=payment.amount,
        )

    @activity.defn(name="payments.return_unapplied_charge")
    @mapped_errors
    async def return_unapplied_charge(self, inp: RefundInput) -> RefundResult:
        """Give back what the charge of ``inp.charge_key`` took that no payment holds: run
        when an operator skipped the charge step, whose attempts may have charged."""
        await self._guard()
        if not inp.charge_key:
            raise InvalidInput("the charge key to return is missing")
        amount, refund_id = await self._return_unapplied(inp.charge_key, inp.invoice_id)
        return RefundResult(
            attempt=activity.info().attempt,
            refunded=amount,
            refund_ids=[refund_id] if refund_id else [],
        )

    async def _return_unapplied(self, charge_key: str, invoice_id: str) -> tuple[Decimal, str]:
        """Refund what the gateway charged under ``charge_key`` and no payment of the
        invoice holds (all of it, or what a payment of less than the charge left over);
        returns the amount and the refund id (0 and "" when there is nothing to give back).
        The refund's key names what was refunded before it: a retry finds its own refund,
        and a later remainder gets its own."""
        charge = await self._gateway.succeeded_charge(charge_key)
        return await self._give_back(charge_key, invoice_id, charge)

    async def _give_back(
        self, charge_key: str, invoice_id: str, charge: GatewayCharge | None
    ) -> tuple[Decimal, str]:
        """``_return_unapplied`` for a charge already looked up."""
        if charge is None:
            return Decimal(0), ""
        payments = await asyncio.to_thread(self._erp.payments_for_invoice, invoice_id)
        # What the charge holds that no payment does: refunds of its payments came out of
        # both sides, so they cancel out.
        applied = sum(
            (p.amount - p.refunded for p in payments if p.charge_id == charge.charge_id),
            Decimal(0),
        )
        left = charge.amount - charge.refunded - applied
        if left <= 0:
            return Decimal(0), ""
        key = f"{charge_key}:unapplied:{charge.refunded}"
        refund_id = await self._gateway.refund(key, charge.charge_id, left)
        activity.logger.warning(
            "charge %s of %s applied to no payment of invoice %s: refunded %s",
            charge.charge_id,
            charge.amount,
            invoice_id,
            left,
        )
        return left, refund_id

    @activity.defn(name="payments.refund_invoice")
    @mapped_errors
    async def refund_invoice(self, inp: RefundInput) -> RefundResult:
        """Refund every card payment of the invoice in full, once per payment, and a charge
        made for the invoice that no payment holds (one whose answer a timeout lost).

        Money paid by other means cannot go back by card: while any is left, the step is
        refused (``manual_refund_required``) so an operator refunds it and skips the step.
        """
        await self._guard()
        payments = await asyncio.to_thread(self._erp.payments_for_invoice, inp.invoice_id)
        refunded, ids = Decimal(0), list[str]()
        by_hand: list[str] = []
        for p in payments:
            left = p.amount - p.refunded
            if left <= 0:
                continue
            if p.charge_id is None:
                by_hand.append(f"{left} {p.currency} by {p.method} ({p.reference})")
                continue
            key = f"{inp.key}:{p.id}"
            refund_id = await self._gateway.refund(key, p.charge_id, left)
            await asyncio.to_thread(self._erp.record_refund, key, p.id, left, refund_id)
            refunded += left
            ids.append(refund_id)
        if inp.charge_key:
            amount, refund_id = await self._return_unapplied(inp.charge_key, inp.invoice_id)
            if refund_id:
                refunded += amount
                ids.append(refund_id)
        if by_hand:
            raise ManualRefundRequired(
                f"invoice {inp.invoice_id}: refund {', '.join(by_hand)} by hand, then skip"
            )
        return RefundResult(attempt=activity.info().attempt, refunded=refunded, refund_ids=ids)
