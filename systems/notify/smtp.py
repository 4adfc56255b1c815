"""E-mail over SMTP, one message per idempotency key.

The send is recorded as ``sending`` before the SMTP conversation and ``sent`` after it, so
a crash in between can at worst send again (at-least-once, with a stable Message-ID the
receiver can deduplicate on), and a retry after ``sent`` never sends twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
from email.message import EmailMessage
from urllib.parse import unquote, urlparse

from sqlalchemy.engine import Engine

from domain.errors import SystemUnavailable
from systems.db import unit_of_work
from systems.notify.tables import MessageRow

TIMEOUT_SECONDS = 10


class SmtpNotifier:
    def __init__(self, engine: Engine, smtp_url: str, mail_from: str) -> None:
        self._engine = engine
        self._url = urlparse(smtp_url)
        if self._url.scheme not in ("smtp", "smtps"):
            raise ValueError(f"unsupported SMTP URL scheme: {self._url.scheme}")
        self._from = mail_from

    async def send_email(self, key: str, to: str, subject: str, body: str) -> str:
        return await asyncio.to_thread(self._send, key, to, subject, body)

    def _send(self, key: str, to: str, subject: str, body: str) -> str:
        message_id = f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@o2c>"
        with unit_of_work(self._engine) as s:
            row = s.get(MessageRow, key)
            if row is not None and row.status == "sent":
                return row.message_id
            if row is None:
                s.add(MessageRow(key=key, message_id=message_id, recipient=to, subject=subject))
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = (
            self._from,
            to,
            subject,
            message_id,
        )
        msg.set_content(body)
        self._deliver(msg)
        with unit_of_work(self._engine) as s:
            row = s.get(MessageRow, key)
            assert row is not None
            row.status = "sent"
            s.add(row)
        return message_id

    def _deliver(self, msg: EmailMessage) -> None:
        host, port = self._url.hostname or "127.0.0.1", self._url.port
        cls = smtplib.SMTP_SSL if self._url.scheme == "smtps" else smtplib.SMTP
        try:
            with cls(
                host, port or (465 if cls is smtplib.SMTP_SSL else 25), timeout=TIMEOUT_SECONDS
            ) as smtp:
                if self._url.username:
                    smtp.login(unquote(self._url.username), unquote(self._url.password or ""))
                smtp.send_message(msg)
        except (OSError, smtplib.SMTPException) as exc:
            raise SystemUnavailable("notifications", f"SMTP {host}:{port}: {exc}") from exc
