"""E-mail over SMTP, one message per idempotency key.

The send is recorded as ``sending`` before the SMTP conversation and ``sent`` after it, so
a crash in between can at worst send again (at-least-once, with a stable Message-ID the
receiver can deduplicate on), and a retry after ``sent`` never sends twice.

Connections are kept open between messages (a few, each used by one send at a time), as
mail clients do with their relay: a message then costs one SMTP transaction instead of a
TCP connection, a greeting, EHLO, maybe TLS and a login, and QUIT. A kept connection that
turns out closed or broken (servers drop idle clients) is replaced by a new one and the
message sent on it; should the break have come after the server took the message, that is
the at-least-once case above.
"""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
import threading
import time
from email.message import EmailMessage
from urllib.parse import unquote, urlparse

from sqlalchemy.engine import Engine

from domain.errors import SystemUnavailable
from systems.db import unit_of_work
from systems.notify.tables import MessageRow

TIMEOUT_SECONDS = 10
# Kept connections: how many, and for how long unused (well under the 5 minutes after
# which RFC 5321 lets a server drop an idle client).
KEEP_CONNECTIONS = 4
KEEP_SECONDS = 30.0


class SmtpNotifier:
    def __init__(self, engine: Engine, smtp_url: str, mail_from: str) -> None:
        self._engine = engine
        self._url = urlparse(smtp_url)
        if self._url.scheme not in ("smtp", "smtps"):
            raise ValueError(f"unsupported SMTP URL scheme: {self._url.scheme}")
        self._from = mail_from
        self._kept: list[tuple[float, smtplib.SMTP]] = []
        self._lock = threading.Lock()

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
        while True:
            smtp, kept = self._checkout()
            try:
                smtp.send_message(msg)
            except (OSError, smtplib.SMTPServerDisconnected) as exc:
                smtp.close()  # broken: no QUIT
                if kept:
                    continue  # closed or broken while it was kept: take another
                raise self._unavailable(exc) from exc
            except smtplib.SMTPException as exc:
                _close(smtp)  # refused: the connection works, end it politely
                raise self._unavailable(exc) from exc
            self._checkin(smtp)
            return

    def _checkout(self) -> tuple[smtplib.SMTP, bool]:
        """A kept connection (True) or a new one (False)."""
        now, stale = time.monotonic(), []
        with self._lock:
            while self._kept:
                used, smtp = self._kept.pop()
                if now - used < KEEP_SECONDS:
                    break
                stale.append(smtp)
            else:
                smtp = None
        for old in stale:
            _close(old)
        return (smtp, True) if smtp is not None else (self._connect(), False)

    def _checkin(self, smtp: smtplib.SMTP) -> None:
        with self._lock:
            if len(self._kept) < KEEP_CONNECTIONS:
                self._kept.append((time.monotonic(), smtp))
                return
        _close(smtp)

    def _connect(self) -> smtplib.SMTP:
        host, port = self._url.hostname or "127.0.0.1", self._url.port
        ssl = self._url.scheme == "smtps"
        cls = smtplib.SMTP_SSL if ssl else smtplib.SMTP
        try:
            smtp = cls(host, port or (465 if ssl else 25), timeout=TIMEOUT_SECONDS)
            try:
                if self._url.username:
                    smtp.login(unquote(self._url.username), unquote(self._url.password or ""))
            except BaseException:
                smtp.close()
                raise
        except (OSError, smtplib.SMTPException) as exc:
            raise self._unavailable(exc) from exc
        return smtp

    def _unavailable(self, exc: BaseException) -> SystemUnavailable:
        return SystemUnavailable(
            "notifications", f"SMTP {self._url.hostname}:{self._url.port}: {exc}"
        )

    def close(self) -> None:
        """Close the kept connections (a worker that stops says goodbye to its relay)."""
        with self._lock:
            kept, self._kept = self._kept, []
        for _, smtp in kept:
            _close(smtp)


def _close(smtp: smtplib.SMTP) -> None:
    """QUIT politely if the connection still works, then close it in any case."""
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()
