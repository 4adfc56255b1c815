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

Connections are encrypted when the relay can: ``smtps://`` is TLS from the start, and on
``smtp://`` the client upgrades with STARTTLS whenever the relay offers it; certificates
of relays on other hosts are verified. Credentials in the URL are never sent over an
unencrypted connection to another host: a relay that offers no STARTTLS is then refused.

A refusal is an answer, not a failure to connect: a permanent one (5xx: no such mailbox,
message rejected) is ``MessageRefused``, which no retry can change, so the step asks an
operator at once; a transient one (4xx) is ``SystemUnavailable`` and retried.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import smtplib
import ssl
import threading
import time
from email.charset import QP, Charset
from email.header import Header
from email.message import EmailMessage, Message
from email.policy import compat32
from email.utils import formatdate
from urllib.parse import unquote, urlparse

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Engine

from domain.errors import MessageRefused, SystemUnavailable
from systems.db import utcnow, write_connection
from systems.notify.tables import MessageRow

TIMEOUT_SECONDS = 10
# Kept connections: how many, and for how long unused (well under the 5 minutes after
# which RFC 5321 lets a server drop an idle client).
KEEP_CONNECTIONS = 4
KEEP_SECONDS = 30.0
_UTF8 = Charset("utf-8")
_UTF8.header_encoding = _UTF8.body_encoding = QP
_WIRE = compat32.clone(linesep="\r\n")  # SMTP lines end in CRLF


_MESSAGES = MessageRow.__table__  # type: ignore[attr-defined]
_LOGGED = select(_MESSAGES.c.status, _MESSAGES.c.message_id).where(
    _MESSAGES.c.key == bindparam("message_key")
)
_MARK_SENT = (
    update(_MESSAGES).where(_MESSAGES.c.key == bindparam("message_key")).values(status="sent")
)


class SmtpNotifier:
    def __init__(self, engine: Engine, smtp_url: str, mail_from: str) -> None:
        self._engine = engine
        self._url = urlparse(smtp_url)
        if self._url.scheme not in ("smtp", "smtps"):
            raise ValueError(f"unsupported SMTP URL scheme: {self._url.scheme}")
        self._from = mail_from
        self._kept: list[tuple[float, smtplib.SMTP]] = []
        self._lock = threading.Lock()
        self._closed = False  # after close(), connections are not kept: sends still work

    async def send_email(self, key: str, to: str, subject: str, body: str) -> str:
        return await asyncio.to_thread(self._send, key, to, subject, body)

    def _send(self, key: str, to: str, subject: str, body: str) -> str:
        message_id = f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@o2c>"
        with write_connection(self._engine) as conn:
            found = conn.execute(_LOGGED, {"message_key": key}).first()
            if found is not None and found.status == "sent":
                return str(found.message_id)
            if found is None:
                conn.execute(
                    insert(_MESSAGES).values(
                        key=key,
                        message_id=message_id,
                        recipient=to,
                        subject=subject,
                        status="sending",
                        created_at=utcnow(),
                    )
                )
        self._deliver(to, self._message(to, subject, message_id, body))
        with write_connection(self._engine) as conn:
            conn.execute(_MARK_SENT, {"message_key": key})
        return message_id

    def _message(self, to: str, subject: str, message_id: str, body: str) -> bytes | EmailMessage:
        """The message: composed directly for ASCII addresses (five times cheaper than
        ``EmailMessage``), else as an ``EmailMessage``, which smtplib sends with SMTPUTF8."""
        if to.isascii() and self._from.isascii():
            return compose(self._from, to, subject, message_id, body)
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = self._from, to, subject
        msg["Date"], msg["Message-ID"] = formatdate(usegmt=True), message_id
        msg.set_content(body)
        return msg

    def _deliver(self, to: str, msg: bytes | EmailMessage) -> None:
        while True:
            smtp, kept = self._checkout()
            try:
                if isinstance(msg, bytes):
                    smtp.sendmail(self._from, [to], msg)
                else:
                    smtp.send_message(msg)
            except smtplib.SMTPServerDisconnected as exc:
                smtp.close()
                if kept:
                    continue  # closed while it was kept: take another
                raise self._unavailable(exc) from exc
            except smtplib.SMTPException as exc:  # the server answered: a refusal
                if _closing(exc) or (kept and _out_of_step(exc)):
                    smtp.close()
                    if kept:
                        continue  # the kept connection was at fault: a fresh one
                else:
                    self._reset_and_keep(smtp)
                if _permanent(exc):
                    raise MessageRefused(f"SMTP refused the message to {to}: {exc}") from exc
                raise self._unavailable(exc) from exc
            except OSError as exc:  # the connection broke (SMTPException is an OSError too)
                smtp.close()
                if kept:
                    continue
                raise self._unavailable(exc) from exc
            except BaseException:
                smtp.close()
                raise
            self._checkin(smtp)
            return

    def _reset_and_keep(self, smtp: smtplib.SMTP) -> None:
        """After a refusal, end the transaction (smtplib does not always: a refused DATA
        command leaves it open) and keep the connection; close it if that fails."""
        try:
            code, _ = smtp.rset()
        except (OSError, smtplib.SMTPException):
            code = 0
        if code != 250:
            smtp.close()
            return
        self._checkin(smtp)

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
            if not self._closed and len(self._kept) < KEEP_CONNECTIONS:
                self._kept.append((time.monotonic(), smtp))
                return
        _close(smtp)

    def _connect(self) -> smtplib.SMTP:
        """A connection, encrypted whenever the server can (``smtps://``, else STARTTLS when
        offered) with the certificate verified, and logged in if the URL has credentials —
        never over an unencrypted connection unless the server is on this host."""
        host, port = self._url.hostname or "127.0.0.1", self._url.port
        try:
            if self._url.scheme == "smtps":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    host, port or 465, timeout=TIMEOUT_SECONDS, context=tls_context(host)
                )
            else:
                smtp = smtplib.SMTP(host, port or 25, timeout=TIMEOUT_SECONDS)
            try:
                self._secure(smtp, host)
                if self._url.username:
                    smtp.login(unquote(self._url.username), unquote(self._url.password or ""))
            except BaseException:
                smtp.close()
                raise
        except (OSError, smtplib.SMTPException) as exc:
            raise self._unavailable(exc) from exc
        return smtp

    def _secure(self, smtp: smtplib.SMTP, host: str) -> None:
        if isinstance(smtp, smtplib.SMTP_SSL):
            return
        smtp.ehlo()
        if smtp.has_extn("starttls"):
            smtp.starttls(context=tls_context(host))
            smtp.ehlo()
        elif self._url.username and not _on_this_host(host):
            raise SystemUnavailable(
                "notifications",
                f"SMTP {host} offers no STARTTLS: credentials are not sent unencrypted "
                "(use smtps:// or a relay that offers STARTTLS)",
            )

    def _unavailable(self, exc: BaseException) -> SystemUnavailable:
        return SystemUnavailable(
            "notifications", f"SMTP {self._url.hostname}:{self._url.port}: {exc}"
        )

    def close(self) -> None:
        """Close the kept connections (a worker that stops says goodbye to its relay); a
        send still running, or made later, closes its connection when it is done."""
        with self._lock:
            self._closed = True
            kept, self._kept = self._kept, []
        for _, smtp in kept:
            _close(smtp)


def compose(sender: str, to: str, subject: str, message_id: str, body: str) -> bytes:
    """A plain-text UTF-8 message (quoted-printable: readable where it is ASCII) between
    ASCII addresses; a non-ASCII subject becomes an RFC 2047 encoded word. A header value
    with a line break would start a header of its own: it is refused."""
    for name, value in (("From", sender), ("To", to), ("Subject", subject)):
        if "\r" in value or "\n" in value:
            raise MessageRefused(f"the {name} header may not contain a line break")
    msg = Message()
    msg["From"], msg["To"] = sender, to
    if not subject.isascii():  # encoded words, folded after the header's name
        subject = Header(subject, _UTF8, header_name="Subject").encode()
    msg["Subject"] = subject
    msg["Date"], msg["Message-ID"] = formatdate(usegmt=True), message_id
    msg["MIME-Version"] = "1.0"
    msg.set_payload(body, _UTF8)
    return msg.as_bytes(policy=_WIRE)


def tls_context(host: str) -> ssl.SSLContext:
    """Verifies the certificate and name of a relay elsewhere against the system's trusted
    CAs (``SSL_CERT_FILE`` adds a private CA). A relay on this host is encrypted to but not
    verified: nothing between the two can listen, and local relays (a distribution's
    default Postfix) commonly present a self-signed certificate."""
    context = ssl.create_default_context()
    if _on_this_host(host):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _on_this_host(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _closing(exc: smtplib.SMTPException) -> bool:
    """A 421 answer: the server is closing the connection (e.g. an idle kept one)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return any(code == 421 for code, _ in exc.recipients.values())
    return getattr(exc, "smtp_code", None) == 421


def _out_of_step(exc: smtplib.SMTPException) -> bool:
    """500-504: the server did not understand the command where it came (a protocol
    state problem of the connection, not a verdict on the message)."""
    code = getattr(exc, "smtp_code", None)
    return isinstance(code, int) and 500 <= code <= 504


def _permanent(exc: smtplib.SMTPException) -> bool:
    """A 5xx answer (RFC 5321: the same request will be refused again), or a server that
    cannot take this message at all (no SMTPUTF8 for an international address); a 4xx
    answer is transient."""
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return True
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    code = getattr(exc, "smtp_code", None)
    return isinstance(code, int) and code >= 500


def _close(smtp: smtplib.SMTP) -> None:
    """QUIT politely if the connection still works, then close it in any case."""
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()
