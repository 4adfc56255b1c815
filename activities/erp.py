"""ERP activities: thin, idempotent steps over the ``Erp`` port.

Run as local activities (the embedded ERP is an in-process database call): each derives
nothing itself — the workflow passes the idempotency key (process id + step) — calls one
port method, and returns a contract model. No arithmetic here: ``domain/`` does it.
"""

from __future__ import annotations

import time

from temporalio import activity

from activities.errors import mapped_errors
from activities.faults import Faults
from domain.errors import InvalidInput
from domain.money import is_exact
from systems.ports import Erp
from systems.quoting import credit_snapshot, snapshot_of
from systems.records import Invoice
from workflows.contracts.activities import (
    BackorderInput,
    CommitStockInput,
    CreditCheck,
    CreditInput,
    CustomerRef,
    CustomerSnapshot,
    DocumentInput,
    Done,
    InvoiceResult,
    IssueInvoiceInput,
    KeyInput,
    RefundByHandInput,
    RefundResult,
    Released,
    ReserveInput,
    ReverseInvoiceInput,
    SalesOrderInput,
    SalesOrderResult,
)


def _attempt() -> int:
    return activity.info().attempt


def _invoice_result(inv: Invoice) -> InvoiceResult:
    return InvoiceResult(
        attempt=_attempt(),
        invoice_id=inv.id,
        number=inv.number,
        total=inv.total,
        amount_due=inv.amount_due,
        status=inv.status,
    )


class ErpActivities:
    """Activities over the ERP; every change is keyed so a retry changes nothing more."""

    def __init__(self, erp: Erp, faults: Faults) -> None:
        self._erp = erp
        self._faults = faults

    def _guard(self) -> None:
        delay = self._faults.check("erp")
        if delay:
            time.sleep(delay)

    @activity.defn(name="erp.customer_snapshot")
    @mapped_errors
    def customer_snapshot(self, ref: CustomerRef) -> CustomerSnapshot:
        """Credit limit, open AR and contact of a customer, as of the process date."""
        self._guard()
        return credit_snapshot(self._erp, ref.customer_id, ref.as_of, _attempt())

    @activity.defn(name="erp.commit_credit")
    @mapped_errors
    def commit_credit(self, inp: CreditInput) -> CreditCheck:
        """Check the order against open AR + open orders + the limit, and commit its total
        when it fits (or is forced), in one ERP transaction."""
        self._guard()
        found = self._erp.commit_credit(
            inp.key,
            inp.customer_id,
            inp.order_id,
            inp.amount,
            inp.currency,
            inp.as_of,
            force=inp.force,
        )
        snapshot = snapshot_of(found.view, _attempt())
        return CreditCheck(
            **snapshot.model_dump(),
            open_orders=found.view.account.open_orders,
            committed=found.committed,
            reason=None if found.committed else found.decision.reason,
        )

    @activity.defn(name="erp.release_credit")
    @mapped_errors
    def release_credit(self, inp: KeyInput) -> Done:
        """The order no longer counts against the customer's credit limit."""
        self._guard()
        self._erp.release_credit(inp.key)
        return Done(attempt=_attempt())

    @activity.defn(name="erp.reserve_stock")
    @mapped_errors
    def reserve_stock(self, inp: ReserveInput) -> Done:
        """Reserve every physical line or none (``out_of_stock`` names the shortfalls)."""
        self._guard()
        self._erp.reserve(inp.key, inp.order_id, inp.lines)
        return Done(attempt=_attempt())

    @activity.defn(name="erp.add_backorder")
    @mapped_errors
    def add_backorder(self, inp: BackorderInput) -> Done:
        """Put the process on the wait list of the SKUs it lacks."""
        self._guard()
        self._erp.add_backorder(inp.process_id, inp.skus)
        return Done(attempt=_attempt())

    @activity.defn(name="erp.release_stock")
    @mapped_errors
    def release_stock(self, inp: KeyInput) -> Released:
        """Give the reservation back; the processes waiting for its SKUs are named."""
        self._guard()
        return Released(attempt=_attempt(), woken=self._erp.release(inp.key))

    @activity.defn(name="erp.commit_stock")
    @mapped_errors
    def commit_stock(self, inp: CommitStockInput) -> Done:
        """Turn the reservation into a stock deduction when the goods ship (with none,
        deduct the shipped lines)."""
        self._guard()
        self._erp.commit_reservation(inp.key, inp.lines or None, inp.order_id)
        return Done(attempt=_attempt())

    @activity.defn(name="erp.create_sales_order")
    @mapped_errors
    def create_sales_order(self, inp: SalesOrderInput) -> SalesOrderResult:
        self._guard()
        so = self._erp.create_sales_order(
            inp.key, inp.order_id, inp.customer_id, inp.total, inp.currency
        )
        return SalesOrderResult(attempt=_attempt(), sales_order_id=so.id, erp_number=so.erp_number)

    @activity.defn(name="erp.cancel_sales_order")
    @mapped_errors
    def cancel_sales_order(self, inp: SalesOrderInput) -> Done:
        self._guard()
        self._erp.cancel_sales_order(inp.key, inp.order_id)
        return Done(attempt=_attempt())

    @activity.defn(name="erp.issue_invoice")
    @mapped_errors
    def issue_invoice(self, inp: IssueInvoiceInput) -> InvoiceResult:
        """Issue the draft once per key: a number, AR and a balanced ledger entry."""
        self._guard()
        inv = self._erp.issue_invoice(inp.key, inp.draft)
        return _invoice_result(inv)

    @activity.defn(name="erp.reverse_invoice")
    @mapped_errors
    def reverse_invoice(self, inp: ReverseInvoiceInput) -> InvoiceResult:
        """Undo an invoice: void it if nothing was paid, else credit what is left of it."""
        self._guard()
        inv = self._erp.get_invoice(inp.invoice_id)
        if inv.status in ("open", "paid") and inv.amount_paid == inv.amount_credited == 0:
            inv = self._erp.void_invoice(inp.key, inv.id)
        elif inv.status != "void":
            remaining = inv.total - inv.amount_credited
            if remaining > 0:
                self._erp.issue_credit_note(inp.key, inv.id, remaining, inp.reason)
            inv = self._erp.get_invoice(inv.id)
        return _invoice_result(inv)

    @activity.defn(name="erp.record_refund_by_hand")
    @mapped_errors
    def record_refund_by_hand(self, inp: RefundByHandInput) -> RefundResult:
        """Record what an operator refunded by hand against the invoice's payments made by
        other means than the card, oldest first (each refund posts its ledger entry; a
        retry records nothing twice). More than those payments hold is invalid input."""
        self._guard()
        invoice = self._erp.get_invoice(inp.invoice_id)
        if not is_exact(inp.amount, invoice.currency):
            raise InvalidInput(f"{inp.amount} has more decimals than {invoice.currency} allows")
        others = [p for p in self._erp.payments_for_invoice(inp.invoice_id) if not p.charge_id]
        keys = [f"{inp.key}:{p.id}" for p in others]
        left = inp.amount - self._erp.refunds_recorded(keys)  # an earlier attempt's count
        parts = []
        for p, key in zip(others, keys, strict=True):  # the whole plan before any write
            part = min(left, p.amount - p.refunded)
            if part > 0:
                parts.append((key, p.id, part))
                left -= part
        if left > 0:
            raise InvalidInput(
                f"{inp.amount} was not paid by other means than the card on {inp.invoice_id}"
            )
        for key, payment_id, part in parts:
            self._erp.record_refund(key, payment_id, part, f"by-hand:{inp.key}")
        return RefundResult(attempt=_attempt(), refunded=inp.amount)

    @activity.defn(name="erp.save_document")
    @mapped_errors
    def save_document(self, inp: DocumentInput) -> Done:
        """Write the process's read model (quote or order as the API shows it)."""
        # No fault check: the read model is bookkeeping, not a call to the ERP's business.
        self._erp.save_document(inp.kind, inp.doc_id, inp.customer_id, inp.body)
        return Done(attempt=_attempt())
