"""Notification activities: e-mail a customer, once per idempotency key."""

from __future__ import annotations

import asyncio

from temporalio import activity

from activities.errors import mapped_errors
from activities.faults import Faults
from systems.ports import Erp, Notifier
from systems.records import Customer
from workflows.contracts.activities import EmailInput, EmailResult


class NotifyActivities:
    def __init__(self, notifier: Notifier, erp: Erp, faults: Faults) -> None:
        self._notifier = notifier
        self._erp = erp
        self._faults = faults

    def _prepare(self, customer_id: str) -> tuple[float, Customer]:
        """The fault switch and the recipient, in one trip to a thread."""
        return self._faults.check("notifications"), self._erp.get_customer(customer_id)

    @activity.defn(name="notify.email_customer")
    @mapped_errors
    async def email_customer(self, inp: EmailInput) -> EmailResult:
        """Send ``subject``/``body`` to the customer's billing e-mail."""
        delay, customer = await asyncio.to_thread(self._prepare, inp.customer_id)
        if delay:
            await asyncio.sleep(delay)
        message_id = await self._notifier.send_email(inp.key, customer.email, inp.subject, inp.body)
        return EmailResult(attempt=activity.info().attempt, message_id=message_id)
