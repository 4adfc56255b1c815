"""QuoteToOrder: from a priced quote through approval and acceptance to a fulfilled order.

Quote stage: ``pending_approval`` (an operator approves or rejects) → ``open`` (the customer
accepts or declines) → ``accepted`` → ``ordered``; ``expired`` when validity ends first, by
the customer's clock. Order stage: credit check (``credit_hold`` until released or
cancelled), stock reservation (``backordered`` until stock arrives), the ERP sales order,
the split into shipments / service orders / subscriptions, invoices (services at
confirmation, goods when shipped), the card charge, and the carrier's events until
``completed``. A cancel or abort compensates in reverse: release stock, void or credit and
refund invoices, cancel the ERP order. Orchestration only: every effect is an activity.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.erp import ErpActivities
    from activities.notifications import NotifyActivities
    from activities.payments import PaymentActivities
    from domain.credit import check_credit
    from domain.invoicing import assemble_order_invoice
    from domain.money import is_exact
    from domain.orders import OrderSplit, split_order
    from domain.pricing import PricedLine
    from systems.ids import prefixed
    from workflows.contracts.activities import (
        BackorderInput,
        ChargeInput,
        ChargeResult,
        CommitStockInput,
        CreditCheck,
        CreditInput,
        CustomerRef,
        CustomerSnapshot,
        DocumentInput,
        Done,
        EmailInput,
        EmailResult,
        InvoiceResult,
        IssueInvoiceInput,
        KeyInput,
        RefundByHandInput,
        RefundInput,
        RefundResult,
        Released,
        ReserveInput,
        ReverseInvoiceInput,
        SalesOrderInput,
        SalesOrderResult,
        StepResult,
    )
    from workflows.contracts.quote_to_order import (
        AcceptRequest,
        CancelRequest,
        DeclineRequest,
        NoteRequest,
        Order,
        PaymentTerms,
        PendingSubscription,
        Quote,
        QuoteToOrderInput,
        QuoteToOrderResult,
        ServiceOrder,
        Shipment,
        ShipmentEventUpdate,
        ShipmentLine,
        initial_order,
        initial_quote,
    )
    from workflows.operable import (
        BusinessFailure,
        OperableWorkflow,
        ProcessInterrupted,
        conflict,
        not_found,
    )

# A backordered order re-checks stock after this long even if no wake-up reaches it (a
# missed signal must not strand an order), then at doubling intervals up to the maximum.
BACKORDER_RECHECK = timedelta(hours=1)
BACKORDER_RECHECK_MAX = timedelta(hours=6)
# Refusals of a charge that leave the invoice open for dunning instead of stopping the order.
DECLINES = ("card_declined", "invoice_not_payable")
REFUND_UNAPPLIED_CHARGE = "refund-unapplied-charge"
FULFIL_QUEUED_EVENTS = "fulfil-queued-events"
RECHECK_AFTER_BACKORDER = "recheck-stock-after-backorder"
BACKORDER_BACKOFF = "backorder-recheck-backoff"
RELEASE_ON_SKIPPED_COMMIT = "release-stock-on-skipped-commit"
RETURN_CHARGE_ON_SKIP = "return-charge-on-skip"
RECORD_REFUND_BY_HAND = "record-refund-by-hand"
CANCELLABLE = ("received", "credit_hold", "backordered", "confirmed", "fulfilling")
Compensation = tuple[str, Callable[[], Awaitable[object]]]


@workflow.defn(name="QuoteToOrderWorkflow")
class QuoteToOrderWorkflow(OperableWorkflow):
    process_type = "quote_to_order"

    @workflow.init
    def __init__(self, inp: QuoteToOrderInput) -> None:
        self._init_operable(inp.process_id, inp.customer_id, inp.clock, inp.first_attempt_alone)
        self.inp = inp
        self.quote: Quote | None = initial_quote(inp) if inp.quote_id else None
        self.order: Order | None = None
        self._status_before_attention: str | None = None
        self._released = False
        self._stock_changed = False
        self._stock_waits = 0
        self._backoff: bool | None = None
        self._events: list[ShipmentEventUpdate] = []
        self._undo: list[Compensation] = []
        self._customer: CustomerSnapshot | None = None
        self._payment: PaymentTerms | None = None
        # The key of the order's credit commitment, once made (None before, and in
        # executions from before commitments).
        self._credit_key: str | None = None
        self._invoiced = Decimal(0)

    @workflow.run
    async def run(self, inp: QuoteToOrderInput) -> QuoteToOrderResult:
        self.publish_start(float(inp.totals.total))
        try:
            payment = await self._quote_stage() if self.quote else inp.payment
            if payment is not None:
                await self._order_stage(payment)
        except ProcessInterrupted as stop:
            await self._compensate(stop)
        self._terminal = True
        self.publish()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return QuoteToOrderResult(quote=self.quote, order=self.get_order())

    # --- views ------------------------------------------------------------------------------

    def status(self) -> str:
        if self.order is not None:
            return self.order.status
        return self.quote.status if self.quote else "received"

    def refs(self) -> dict[str, str]:
        refs = {"quote_id": self.quote.id} if self.quote else {}
        return refs | ({"order_id": self.order.id} if self.order else {})

    @workflow.query(name="quote")
    def get_quote(self) -> Quote | None:
        return self.quote

    @workflow.query(name="order")
    def get_order(self) -> Order | None:
        if self.order is None:
            return None
        return self.order.model_copy(update={"steps": self.steps, "failed_step": self.failed})

    async def _save(self) -> None:
        """Publish the status and write the read model the API serves after the process."""
        self.publish()
        docs: list[tuple[str, str, dict[str, object]]] = []
        if self.quote is not None:
            docs.append(("quote", self.quote.id, self.quote.model_dump(mode="json")))
        order = self.get_order()
        if order is not None:
            docs.append(("order", order.id, order.model_dump(mode="json")))
        for kind, doc_id, body in docs:
            await workflow.execute_local_activity_method(
                ErpActivities.save_document,
                DocumentInput(kind=kind, doc_id=doc_id, customer_id=self.customer_id, body=body),
                start_to_close_timeout=timedelta(seconds=10),
            )

    async def _save_unless_first(self) -> None:
        """Save the process's first version, unless its starter already wrote it."""
        if self.inp.first_document_saved:
            self.publish()
        else:
            await self._save()

    async def _on_progress(self) -> None:
        await self._save()

    async def _on_attention(self, needs_attention: bool) -> None:
        if self.order is not None:
            if needs_attention:
                self._status_before_attention = self.order.status
                self.order.status = "needs_attention"
            elif self._status_before_attention is not None:
                self.order.status = self._status_before_attention  # type: ignore[assignment]
        await self._save()

    # --- quote stage ------------------------------------------------------------------------

    async def _quote_stage(self) -> PaymentTerms | None:
        assert self.quote is not None
        await self._save_unless_first()
        expires = self.quote.expires_at
        if self.quote.status == "pending_approval":
            if not await self.wait(lambda: self._quote_status() != "pending_approval", expires):
                await self._end_quote("expired")
                return None
            if self._quote_status() == "rejected":
                await self._end_quote("rejected")
                return None
            await self._save()
        if not await self.wait(lambda: self._quote_status() != "open", expires):
            await self._end_quote("expired")
            return None
        if self._quote_status() == "declined":
            await self._end_quote("declined")
            return None
        return self._payment

    def _quote_status(self) -> str:
        assert self.quote is not None
        return self.quote.status

    async def _end_quote(self, status: str) -> None:
        assert self.quote is not None
        self.quote.status = status  # type: ignore[assignment]
        await self._save()

    @workflow.update
    async def approve(self, req: NoteRequest) -> Quote:
        """An operator approves the discount: the quote opens for the customer."""
        assert self.quote is not None
        self.quote.status, self.quote.note = "open", req.note or None
        return self.quote

    @workflow.update
    async def reject(self, req: NoteRequest) -> Quote:
        assert self.quote is not None
        self.quote.status, self.quote.note = "rejected", req.note or None
        return self.quote

    @approve.validator
    def _validate_approve(self, req: NoteRequest) -> None:
        self._need_quote("pending_approval")

    @reject.validator
    def _validate_reject(self, req: NoteRequest) -> None:
        self._need_quote("pending_approval")

    @workflow.update
    async def accept(self, req: AcceptRequest) -> Quote:
        """The customer accepts: the order is placed with the quote's prices."""
        assert self.quote is not None
        self._payment = req.payment
        self.quote.status, self.quote.order_id = "accepted", self.inp.order_id
        return self.quote

    @workflow.update
    async def decline(self, req: DeclineRequest) -> Quote:
        assert self.quote is not None
        self.quote.status, self.quote.note = "declined", req.reason
        return self.quote

    @accept.validator
    def _validate_accept(self, req: AcceptRequest) -> None:
        self._need_quote("open")

    @decline.validator
    def _validate_decline(self, req: DeclineRequest) -> None:
        self._need_quote("open")

    def _need_quote(self, status: str) -> None:
        if self.quote is None:
            raise conflict("this process is an order without a quote")
        if self.quote.status != status:
            raise conflict(f"quote is {self.quote.status}, not {status}")
        if self.clock.now() >= self.quote.expires_at:
            raise conflict("quote has expired")

    # --- order stage ------------------------------------------------------------------------

    async def _order_stage(self, payment: PaymentTerms) -> None:
        # An order placed directly was answered by the API with the input's time.
        placed_at = self.inp.created_at if self.quote is None else self.clock.now()
        self.order = initial_order(self.inp, payment, placed_at)
        if self.quote is not None:
            self.quote.status = "ordered"
            await self._save()
        else:
            await self._save_unless_first()
        split = split_order(self.order.lines)
        # Updates run only while the workflow awaits, so a cancel or abort that arrived
        # during a step is acted on at these checks, each after the step's undo is known.
        await self._check_credit()
        self.check_interrupt()
        if split.physical:
            await self._reserve_stock(split)
            self.check_interrupt()
        await self._confirm(split)
        self.check_interrupt()
        if split.services:
            await self._invoice(split.services, "services")
            self.check_interrupt()
        if self.order.shipments:
            await self._set_status("fulfilling")
            await self._fulfil()
        if self._credit_key is not None and self._invoiced < self.order.total:
            # What was never invoiced (a skipped invoice, subscription lines, a rounding
            # between split invoices) must not hold the customer's credit after the order.
            await self._release_credit()
        self.order.completed_at = self.clock.now()
        await self._set_status("completed")

    async def _set_status(self, status: str) -> None:
        assert self.order is not None
        self.order.status = status  # type: ignore[assignment]
        await self._save()

    def _key(self, step: str) -> str:
        """Idempotency key of a step's effect: process id + step (never the attempt)."""
        return f"{self.process_id}:{step}"

    def skip_problems(self, result: StepResult) -> list[tuple[str, str]]:
        """A refund made by hand is money in the order's currency, to its minor unit."""
        if not isinstance(result, RefundResult) or self.order is None:
            return []
        currency = self.order.currency
        if not is_exact(result.refunded, currency):
            return [("refunded", f"has more decimals than {currency} allows")]
        return []

    async def _check_credit(self) -> None:
        assert self.order is not None
        if self.inp.commit_credit:
            # Versioned by the input, not ``workflow.patched``: a patch on every order's path
            # would cost each order a marker and a search-attribute write.
            await self._commit_credit()
            return
        # Executions from before commitments: the position is read and decided on here.
        if self.inp.credit is not None:
            # Placed directly: the starter read the credit position at placement, and the
            # timeline says when.
            self._customer = self.inp.credit
            entry = self._timeline("check_credit")
            self._finish(entry, "done", 1, None)
            entry.started_at = entry.finished_at = self.inp.created_at
        else:
            self._customer = await self.step(
                "check_credit",
                ErpActivities.customer_snapshot,
                CustomerRef(customer_id=self.customer_id, as_of=self.clock.now().date()),
                CustomerSnapshot,
            )
        decision = check_credit(
            self._customer.open_ar, self.order.total, self._customer.credit_limit
        )
        if decision.approved:
            return
        await self._hold(decision.reason)

    async def _commit_credit(self) -> None:
        """Check the order against open AR and the customer's other open orders, and commit
        its total, in one ERP step: orders checked at once cannot all take the same credit.
        Held, it waits for an operator's release (which commits it regardless) or a cancel."""
        # The release is due from before the step: an attempt may commit and lose its
        # answer, and the order then be aborted (releasing what was never made is a no-op).
        undo: Compensation = ("check_credit", self._release_credit)
        self._undo.append(undo)
        check = await self.step(
            "check_credit", ErpActivities.commit_credit, self._credit_input(), CreditCheck
        )
        self._customer = check
        if not check.committed:
            self._undo.remove(undo)  # held: nothing was committed
            await self._hold(check.reason or "over the credit limit")
            self._undo.append(("commit_credit", self._release_credit))
            await self.step(
                "commit_credit",
                ErpActivities.commit_credit,
                self._credit_input(force=True),
                CreditCheck,
            )
        self._credit_key = self._key("credit")

    def _credit_input(self, force: bool = False) -> CreditInput:
        assert self.order is not None
        return CreditInput(
            key=self._key("credit"),
            customer_id=self.customer_id,
            order_id=self.order.id,
            amount=self.order.total,
            currency=self.order.currency,
            as_of=self.clock.now().date(),
            force=force,
        )

    async def _release_credit(self) -> Done:
        return await self.step(
            "release_credit",
            ErpActivities.release_credit,
            KeyInput(key=self._key("credit")),
            Done,
        )

    async def _hold(self, reason: str) -> None:
        assert self.order is not None
        self.order.hold_reason = reason
        await self._set_status("credit_hold")
        await self.wait(lambda: self._released)
        self.order.hold_reason = None

    @workflow.update
    async def release(self, req: NoteRequest) -> Order:
        """An operator releases the credit hold."""
        self._released = True
        await workflow.wait_condition(lambda: self.status() != "credit_hold")
        order = self.get_order()
        assert order is not None
        return order

    @release.validator
    def _validate_release(self, req: NoteRequest) -> None:
        if self.order is None or self.order.status != "credit_hold":
            raise conflict(f"order is {self.status()}, not credit_hold")

    async def _reserve_stock(self, split: OrderSplit) -> None:
        assert self.order is not None
        need = split.stock_needed
        skus = sorted(need)
        registered = False
        recheck: bool | None = None
        tries = 0
        while True:
            # The first refusal stays on the timeline; the checks after it continue one
            # entry (and the registrations another), however long the order waits.
            again = self.last_entry("reserve_stock") if tries >= 2 else None
            try:
                await self.step(
                    "reserve_stock",
                    ErpActivities.reserve_stock,
                    ReserveInput(key=self._key("stock"), order_id=self.order.id, lines=need),
                    Done,
                    expect=("out_of_stock",),
                    again=again,
                )
                break
            except BusinessFailure:
                tries += 1
                if recheck is None:
                    recheck = workflow.patched(RECHECK_AFTER_BACKORDER)
                if not recheck:
                    await self._register_backorder(skus)
                    await self._await_stock()
                elif not registered:
                    # Stock that arrived between the refusal and the registration woke
                    # nobody: once registered, the order looks again before it waits.
                    await self._register_backorder(skus)
                    registered = True
                else:
                    await self._await_stock()
                    registered = False  # a wake-up takes the registration with it
        self._undo.append(("reserve_stock", self._release_stock))

    async def _register_backorder(self, skus: list[str]) -> None:
        """Be told (signal ``stock_changed``) when any of ``skus`` is restocked."""
        assert self.order is not None
        self._stock_changed = False
        await self.step(
            "add_backorder",
            ErpActivities.add_backorder,
            BackorderInput(process_id=self.process_id, skus=skus),
            Done,
            again=self.last_entry("add_backorder"),
        )
        if self.order.status != "backordered":
            await self._set_status("backordered")

    async def _await_stock(self) -> None:
        """Wait for a wake-up, or look again after a while in case one was lost: an hour,
        then twice as long each time up to ``BACKORDER_RECHECK_MAX``, so an order that
        waits for months adds a few events a day to its history, not one check an hour."""
        if self._backoff is None:
            self._backoff = workflow.patched(BACKORDER_BACKOFF)
        interval = BACKORDER_RECHECK
        if self._backoff:
            doubled = BACKORDER_RECHECK * 2 ** min(self._stock_waits, 8)
            interval = min(doubled, BACKORDER_RECHECK_MAX)
        self._stock_waits += 1
        await self.wait(lambda: self._stock_changed, self.clock.now() + interval)

    @workflow.signal
    def stock_changed(self) -> None:
        """Stock of a SKU this order waits for was adjusted: re-check availability."""
        self._stock_changed = True

    async def _release_stock(self) -> Released:
        released = await self.step(
            "release_stock",
            ErpActivities.release_stock,
            KeyInput(key=self._key("stock")),
            Released,
        )
        await self._wake(released.woken)
        return released

    async def _wake(self, process_ids: list[str]) -> None:
        """Tell backordered processes that stock they wait for was given back (a process
        that has ended meanwhile cannot be told, and needs nothing)."""
        others = [pid for pid in process_ids if pid != self.process_id]
        sent = await asyncio.gather(
            *(workflow.get_external_workflow_handle(pid).signal("stock_changed") for pid in others),
            return_exceptions=True,
        )
        for pid, outcome in zip(others, sent, strict=True):
            if isinstance(outcome, BaseException):
                workflow.logger.info(
                    "backordered process %s not told: %s", pid, outcome, extra=self.log_ids
                )

    async def _confirm(self, split: OrderSplit) -> None:
        assert self.order is not None
        so = await self.step(
            "create_sales_order",
            ErpActivities.create_sales_order,
            self._so_input(),
            SalesOrderResult,
        )
        self.order.erp_number = so.erp_number or None
        self._undo.append(("create_sales_order", self._cancel_sales_order))
        self._build_fulfilment(split)
        await self._set_status("confirmed")
        await self._email("order_confirmation", f"Order {self.order.id} confirmed", self._summary())

    def _so_input(self) -> SalesOrderInput:
        assert self.order is not None
        return SalesOrderInput(
            key=self._key("sales_order"),
            order_id=self.order.id,
            customer_id=self.customer_id,
            total=self.order.total,
            currency=self.order.currency,
        )

    async def _cancel_sales_order(self) -> Done:
        return await self.step(
            "cancel_sales_order", ErpActivities.cancel_sales_order, self._so_input(), Done
        )

    def _build_fulfilment(self, split: OrderSplit) -> None:
        assert self.order is not None

        def new_id(prefix: str) -> str:
            return prefixed(prefix, workflow.uuid4())

        if split.physical:
            lines = [ShipmentLine(sku=x.sku or "", quantity=x.quantity) for x in split.physical]
            self.order.shipments = [Shipment(id=new_id("shp"), status="pending", lines=lines)]
        self.order.service_orders = [
            ServiceOrder(id=new_id("svo"), sku=x.sku or "", quantity=x.quantity)
            for x in split.services
        ]
        self.order.subscriptions = [
            PendingSubscription(id=new_id("sub"), plan_code=x.plan_code or "", quantity=x.quantity)
            for x in split.plans
        ]
        self.order.subscription_ids = [x.id for x in self.order.subscriptions]

    def _summary(self) -> str:
        assert self.order is not None
        lines = "\n".join(
            f"  {x.quantity} x {x.description} @ {x.unit_price} = {x.amount}"
            for x in self.order.lines
        )
        return f"{lines}\nTotal: {self.order.total} {self.order.currency}\n"

    async def _email(self, step: str, subject: str, body: str) -> None:
        await self.step(
            f"email:{step}",
            NotifyActivities.email_customer,
            EmailInput(
                key=self._key(f"email:{step}"),
                customer_id=self.customer_id,
                subject=subject,
                body=body,
            ),
            EmailResult,
            local=False,
        )

    # --- invoices and payment ---------------------------------------------------------------

    async def _invoice(self, lines: list[PricedLine], label: str) -> str | None:
        """Issue (and, paying by card, charge) an invoice of ``lines``: its id, or None when
        an operator skipped the step and nothing was issued."""
        assert self.order is not None and self._customer is not None
        draft = assemble_order_invoice(
            customer_id=self.customer_id,
            currency=self.order.currency,
            lines=lines,
            discount_pct=self.inp.discount_pct,
            tax_rate=self.inp.tax_rate,
            issue_date=self.clock.now().date(),
            terms_days=self._customer.payment_terms_days,
            pay_by_card=self.order.payment == "card_on_file",
            order_id=self.order.id,
            process_id=self.process_id,
        )
        inv = await self.step(
            f"issue_invoice:{label}",
            ErpActivities.issue_invoice,
            IssueInvoiceInput(key=self._key(f"invoice:{label}"), draft=draft),
            InvoiceResult,
        )
        if not inv.invoice_id:  # skipped by an operator: nothing was issued
            return None
        self.order.invoice_ids.append(inv.invoice_id)
        self._invoiced += inv.total
        self._undo.append((f"issue_invoice:{label}", self._reverser(inv.invoice_id)))
        if self.order.payment == "card_on_file":
            await self._charge(inv)
        return inv.invoice_id

    async def _charge(self, inv: InvoiceResult) -> None:
        name = f"charge_invoice:{inv.invoice_id}"
        try:
            await self.step(
                name,
                PaymentActivities.charge_invoice,
                ChargeInput(
                    key=self._key(f"charge:{inv.invoice_id}"),
                    invoice_id=inv.invoice_id,
                    customer_id=self.customer_id,
                ),
                ChargeResult,
                local=False,
                expect=DECLINES,
            )
        except BusinessFailure as failure:
            # A declined card is a business outcome: the invoice stays open for dunning and
            # the order goes on; the timeline shows the decline.
            workflow.logger.info(
                "charge of %s declined: %s", inv.invoice_id, failure.message, extra=self.log_ids
            )
            return
        if self.last_status(name) == "skipped" and workflow.patched(RETURN_CHARGE_ON_SKIP):
            # A skipped charge did not happen: what an attempt took before the step failed
            # (a timeout after charging) goes back, and the invoice stays open for dunning.
            await self.step(
                f"return_charge:{inv.invoice_id}",
                PaymentActivities.return_unapplied_charge,
                RefundInput(
                    key=self._key(f"return-charge:{inv.invoice_id}"),
                    invoice_id=inv.invoice_id,
                    charge_key=self._key(f"charge:{inv.invoice_id}"),
                ),
                RefundResult,
                local=False,
            )

    def _reverser(self, invoice_id: str) -> Callable[[], Awaitable[object]]:
        async def reverse() -> None:
            reason = self._interrupt.reason if self._interrupt else "order cancelled"
            await self.step(
                f"reverse_invoice:{invoice_id}",
                ErpActivities.reverse_invoice,
                ReverseInvoiceInput(
                    key=self._key(f"reverse:{invoice_id}"), invoice_id=invoice_id, reason=reason
                ),
                InvoiceResult,
            )
            refund = RefundInput(key=self._key(f"refund:{invoice_id}"), invoice_id=invoice_id)
            if self.order is not None and self.order.payment == "card_on_file":
                # A charge whose answer a timeout lost holds money no payment records: the
                # refund step gives it back too (new executions; recorded ones replay as run).
                if workflow.patched(REFUND_UNAPPLIED_CHARGE):
                    refund.charge_key = self._key(f"charge:{invoice_id}")
            name = f"refund_invoice:{invoice_id}"
            refunded = await self.step(
                name, PaymentActivities.refund_invoice, refund, RefundResult, local=False
            )
            by_hand = refunded.refunded if self.last_status(name) == "skipped" else 0
            if by_hand > 0 and workflow.patched(RECORD_REFUND_BY_HAND):
                # Skipped with what the operator refunded by hand (money paid otherwise than
                # by card): the ERP records it, so the ledger no longer holds that cash.
                await self.step(
                    f"record_refund_by_hand:{invoice_id}",
                    ErpActivities.record_refund_by_hand,
                    RefundByHandInput(
                        key=self._key(f"refund-by-hand:{invoice_id}"),
                        invoice_id=invoice_id,
                        amount=by_hand,
                    ),
                    RefundResult,
                )

        return reverse

    # --- shipments --------------------------------------------------------------------------

    async def _fulfil(self) -> None:
        assert self.order is not None
        # The carrier's events are acted on in order, even when all of them arrived before
        # this loop (the Update marks a shipment delivered at once; its "shipped" still
        # has to commit stock and invoice).
        queued = workflow.patched(FULFIL_QUEUED_EVENTS)
        while (queued and self._events) or any(
            s.status != "delivered" for s in self.order.shipments
        ):
            await self.wait(lambda: bool(self._events))
            event = self._events.pop(0)
            shipment = next(s for s in self.order.shipments if s.id == event.shipment_id)
            if event.event == "shipped":
                await self._ship(shipment)
            await self._save()

    async def _ship(self, shipment: Shipment) -> None:
        assert self.order is not None
        shipped: dict[str, int] = {}
        for x in shipment.lines:
            shipped[x.sku] = shipped.get(x.sku, 0) + x.quantity
        await self.step(
            "commit_stock",
            ErpActivities.commit_stock,
            CommitStockInput(key=self._key("stock"), order_id=self.order.id, lines=shipped),
            Done,
        )
        if self.last_status("commit_stock") == "skipped" and workflow.patched(
            RELEASE_ON_SKIPPED_COMMIT
        ):
            # The stock movement was made by hand: the reservation must not hold the goods
            # for good (nor block the count's correction, which may not go below it).
            await self._release_stock()
        # Shipped goods cannot be un-shipped: the reservation is no longer compensable.
        self._undo = [u for u in self._undo if u[0] != "reserve_stock"]
        skus = {x.sku for x in shipment.lines}
        lines = [x for x in self.order.lines if x.kind == "physical" and x.sku in skus]
        shipment.invoice_id = await self._invoice(lines, f"shipment:{shipment.id}")

    @workflow.update
    async def shipment_event(self, event: ShipmentEventUpdate) -> Order:
        """The carrier reports a shipment ``shipped`` or ``delivered``."""
        assert self.order is not None
        shipment = next(s for s in self.order.shipments if s.id == event.shipment_id)
        shipment.status = event.event
        if event.tracking_number:
            shipment.tracking_number = event.tracking_number
        self._events.append(event)
        return self.order.model_copy(update={"steps": self.steps, "failed_step": self.failed})

    @shipment_event.validator
    def _validate_shipment_event(self, event: ShipmentEventUpdate) -> None:
        if self.order is None:
            raise conflict("no order has been placed yet")
        shipment = next((s for s in self.order.shipments if s.id == event.shipment_id), None)
        if shipment is None:
            raise not_found(f"order {self.order.id} has no shipment {event.shipment_id}")
        if self._interrupt is not None or self._compensating:
            raise conflict(f"order {self.order.id} is being cancelled: shipments cannot move")
        if self.order.status not in ("confirmed", "fulfilling", "needs_attention"):
            # Carrier events may arrive while the order still invoices its services; they
            # queue and are acted on in order.
            raise conflict(f"order is {self.order.status}: shipments cannot move")
        expected = {"shipped": "pending", "delivered": "shipped"}[event.event]
        if shipment.status != expected:
            raise conflict(f"shipment is {shipment.status}; {event.event} needs {expected}")

    # --- cancel and compensation ------------------------------------------------------------

    @workflow.update
    async def cancel(self, req: CancelRequest) -> Order:
        """Cancel the order: everything done so far is compensated."""
        self.request_interrupt("cancel", req.reason)
        await self.interrupt_answered()
        order = self.get_order()
        assert order is not None
        return order

    @cancel.validator
    def _validate_cancel(self, req: CancelRequest) -> None:
        if self.order is None:
            raise conflict("no order has been placed yet")
        if self._interrupt is not None:
            raise conflict("order is already being cancelled")
        if self.order.status not in CANCELLABLE and self.order.status != "needs_attention":
            raise conflict(f"order is {self.order.status}: it can no longer be cancelled")
        if self._goods_shipped():
            raise conflict("goods have shipped: return them instead of cancelling")

    def _goods_shipped(self) -> bool:
        return self.order is not None and any(s.status != "pending" for s in self.order.shipments)

    def abort_refusal(self) -> str | None:
        if self._goods_shipped():
            # Shipped goods cannot be compensated: their invoice stands and their stock has
            # left. The failed step is retried or skipped; returns are their own process.
            return "goods have shipped: retry or skip the step instead of aborting"
        return None

    async def _compensate(self, stop: ProcessInterrupted) -> None:
        """Undo completed steps in reverse order, then end as cancelled."""
        self._compensating = True
        if self.order is None:
            if self.quote is not None:
                self.quote.status = "declined" if stop.kind == "cancel" else "rejected"
                self.quote.note = stop.reason
            await self._save()
            return
        self.order.cancel_reason = stop.reason
        for name, undo in reversed(self._undo):
            await undo()
            for entry in self.steps:
                if entry.name == name and entry.status == "done":
                    entry.status = "compensated"
        self._undo.clear()
        for svc in self.order.service_orders:
            svc.status = "cancelled"
        for shp in self.order.shipments:
            shp.status = "cancelled"
        await self._set_status("cancelled")
