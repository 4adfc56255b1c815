"""Notification activities: e-mail a customer, once per idempotency key."""

from __future__ import annotations

import asyncio

from temporalio import activity

from activities.errors import mapped_errors
from activities.faults import Faults
from systems.ports import Erp, Notifier
from workflows.contracts.activities import EmailInput, EmailResult


class NotifyActivities:
    def __init__(self, notifier: Notifier, erp: Erp, faults: Faults) -> None:
        self._notifier = notifier
        self._erp = erp
        self._faults = faults

    @activity.defn(name="notify.email_customer")
    @mapped_errors
    async def email_customer(self, inp: EmailInput) -> EmailResult:
        """Send ``subject``/``body`` to the customer's billing e-mail."""
        delay = await asyncio.to_thread(self._faults.check, "notifications")
        if delay:
            await asyncio.sleep(delay)
        customer = await asyncio.to_thread(self._erp.get_customer, inp.customer_id)
        message_id = await self._notifier.send_email(inp.key, customer.email, inp.subject, inp.body)
        return EmailResult(attempt=activity.info().attempt, message_id=message_id)
