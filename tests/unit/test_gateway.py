"""The sandbox gateway's test cards; the notifier's one message per key, over kept connections."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from decimal import Decimal
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import text
from sqlalchemy.engine import Engine

from domain.errors import CardDeclined, Conflict, InvalidInput, MessageRefused, SystemUnavailable
from systems.db import create_schema, make_engine
from systems.notify.sink import read_index, start_sink
from systems.notify.smtp import SmtpNotifier, compose
from systems.payments.sandbox import SandboxGateway

EUR = "EUR"
CARD_OK = "4242424242424242"
D4 = Decimal("4.00")


@pytest.fixture
def gw(db_engine: Engine) -> SandboxGateway:
    return SandboxGateway(db_engine)


async def _token(gw: SandboxGateway, number: str) -> str:
    return (await gw.tokenize(number, 12, 2030, "123")).token


async def test_4242_succeeds_once_per_key(gw: SandboxGateway) -> None:
    tok = await _token(gw, "4242424242424242")
    first = await gw.charge("k1", tok, Decimal("10.00"), EUR, "x")
    assert await gw.charge("k1", tok, Decimal("10.00"), EUR, "x") == first
    assert await gw.charges_for_key("k1") == 1 and await gw.charge_count(tok) == 1


def test_concurrent_charges_of_one_key_take_the_money_once(gw: SandboxGateway) -> None:
    tok = asyncio.run(_token(gw, "4000000000000259"))  # charges, then times out once
    answers: list[str] = []

    def charge() -> None:
        for _ in range(3):
            try:
                answers.append(asyncio.run(gw.charge("k", tok, Decimal("3.00"), EUR, "x")))
                return
            except SystemUnavailable:
                continue

    threads = [threading.Thread(target=charge) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 8 and len(set(answers)) == 1
    assert asyncio.run(gw.charge_count(tok)) == 1
    with gw._engine.connect() as conn:
        attempts = conn.execute(text("SELECT attempts FROM gw_attempts WHERE key = 'k'"))
        assert attempts.scalar_one() == 9  # every attempt counted: 8 callers, one retried


def _threads(n: int, fn: Callable[[], object]) -> list[BaseException]:
    """Run ``fn`` on n threads at once; what they raised."""
    start, errors = threading.Barrier(n, timeout=30), []

    def run() -> None:
        start.wait()
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - returned to the test
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    return errors


def test_first_tokenisations_and_keyed_refunds_hold_under_concurrency(
    gw: SandboxGateway,
) -> None:
    tokens: list[str] = []
    assert _threads(6, lambda: tokens.append(asyncio.run(_token(gw, CARD_OK)))) == []
    assert len(set(tokens)) == 6
    charge = asyncio.run(gw.charge("k", tokens[0], Decimal("10.00"), EUR, "x"))
    refunds: list[str] = []
    assert _threads(6, lambda: refunds.append(asyncio.run(gw.refund("r1", charge, D4)))) == []
    assert len(set(refunds)) == 1
    with gw._engine.connect() as conn:
        refunded = conn.execute(text("SELECT refunded FROM gw_charges WHERE key = 'k'")).scalar()
    assert Decimal(str(refunded)) == D4


@pytest.mark.parametrize(
    ("number", "code"),
    [("4000000000000002", "card_declined"), ("4000000000009995", "insufficient_funds")],
)
async def test_declining_cards_decline_with_their_code(
    gw: SandboxGateway, number: str, code: str
) -> None:
    tok = await _token(gw, number)
    for _ in range(2):
        with pytest.raises(CardDeclined) as err:
            await gw.charge("k", tok, Decimal("1.00"), EUR, "x")
        assert err.value.decline_code == code
    assert await gw.charges_for_key("k") == 0


async def test_0119_fails_twice_per_key_then_succeeds(gw: SandboxGateway) -> None:
    tok = await _token(gw, "4000000000000119")
    for _ in range(2):
        with pytest.raises(SystemUnavailable):
            await gw.charge("k", tok, Decimal("5.00"), EUR, "x")
    assert await gw.charges_for_key("k") == 0
    charge = await gw.charge("k", tok, Decimal("5.00"), EUR, "x")
    assert charge.startswith("ch_") and await gw.charge_count(tok) == 1


async def test_0259_charges_then_times_out_and_the_retry_returns_that_charge(
    gw: SandboxGateway,
) -> None:
    tok = await _token(gw, "4000000000000259")
    with pytest.raises(SystemUnavailable):
        await gw.charge("k", tok, Decimal("7.00"), EUR, "x")
    assert await gw.charges_for_key("k") == 1
    retried = await gw.charge("k", tok, Decimal("7.00"), EUR, "x")
    assert retried.startswith("ch_") and await gw.charge_count(tok) == 1


async def test_tokens_never_store_the_card_number(gw: SandboxGateway) -> None:
    await _token(gw, "4242424242424242")
    with gw._engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM gw_tokens")).all()
    assert rows and all("4242424242424242" not in " ".join(map(str, r)) for r in rows)
    with pytest.raises(InvalidInput):
        await gw.tokenize("4242424242424241", 12, 2030, "123")
    with pytest.raises(InvalidInput):
        await gw.tokenize("4242424242424242", 1, 2020, "123")


async def test_refunds_are_keyed_and_bounded(gw: SandboxGateway) -> None:
    tok = await _token(gw, "4242424242424242")
    ch = await gw.charge("k", tok, Decimal("10.00"), EUR, "x")
    r1 = await gw.refund("r1", ch, Decimal("6.00"))
    assert await gw.refund("r1", ch, Decimal("6.00")) == r1
    with pytest.raises(Conflict):
        await gw.refund("r2", ch, Decimal("4.01"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_notifier_sends_one_message_per_key_to_the_sink(tmp_path: Path) -> None:
    port = _free_port()
    sink = start_sink(tmp_path, port)
    try:
        engine = make_engine(f"sqlite:///{tmp_path / 'n.db'}")
        create_schema(engine)
        notifier = SmtpNotifier(engine, f"smtp://127.0.0.1:{port}", "billing@o2c.test")
        a = await notifier.send_email("k1", "x@example.com", "First", "hello")
        assert await notifier.send_email("k1", "x@example.com", "First", "hello") == a
        await notifier.send_email("k2", "x@example.com", "Second", "hello")
        assert [m["subject"] for m in read_index(tmp_path)] == ["First", "Second"]
    finally:
        sink.stop()
    down = SmtpNotifier(engine, f"smtp://127.0.0.1:{_free_port()}", "b@o2c.test")
    with pytest.raises(SystemUnavailable):
        await down.send_email("k3", "x@example.com", "Third", "x")


def _notifier(tmp_path: Path, port: int) -> SmtpNotifier:
    """A notifier over a fresh send log, to an SMTP server on ``port``."""
    log = make_engine(f"sqlite:///{tmp_path / 'n.db'}")
    create_schema(log)
    return SmtpNotifier(log, f"smtp://127.0.0.1:{port}", "billing@o2c.test")


async def _until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait for ``condition`` (the SMTP server notes commands on its own thread)."""
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


def _serve(handler: object, port: int) -> Controller:
    """An SMTP server on 127.0.0.1:``port`` answering with ``handler``; ``.stop()`` it."""
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    return controller


class _Connections:
    """An SMTP server handler that notes the client connection each message came over."""

    def __init__(self) -> None:
        self.peers: list[tuple[str, int]] = []
        self.quits: list[tuple[str, int]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.peers.append(session.peer)
        return "250 OK"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.quits.append(session.peer)
        return "221 Bye"


async def test_notifier_keeps_its_connection_and_replaces_one_the_server_dropped(
    tmp_path: Path,
) -> None:
    port = _free_port()
    notifier = _notifier(tmp_path, port)
    first = _Connections()
    server = _serve(first, port)
    try:
        for n in range(3):
            await notifier.send_email(f"k{n}", "x@example.com", f"Message {n}", "hello")
        assert len(first.peers) == 3 and len(set(first.peers)) == 1  # one connection
    finally:
        server.stop()  # drops the kept connection
    second = _Connections()
    server = _serve(second, port)
    try:
        await notifier.send_email("k3", "x@example.com", "After a restart", "hello")
        assert len(second.peers) == 1  # sent on a new connection, not lost
        notifier.close()
        await notifier.send_email("k4", "x@example.com", "After close", "hello")
        assert len(second.peers) == 2 and second.peers[1] != second.peers[0]
        # A closed notifier keeps nothing: the late send's connection said goodbye too.
        await _until(lambda: second.quits == second.peers)
    finally:
        notifier.close()
        server.stop()


async def test_notifier_messages_carry_any_text_and_reach_international_addresses(
    tmp_path: Path,
) -> None:
    port = _free_port()
    sink = start_sink(tmp_path, port)
    notifier = _notifier(tmp_path, port)
    body = "Grüße, Müller GmbH\n  1 x Setup @ 150.00 = 150.00\n" + "x" * 120 + "\nTotal: 178.50 €\n"
    subject = "Bestellung bestätigt – 178,50 € – Lieferung an Müller & Söhne, Großhandel"
    try:
        mid = await notifier.send_email("k1", "ap@example.com", subject, body)
        await notifier.send_email("k2", "müller@example.com", "Grüße", "Hallo")
    finally:
        notifier.close()
        sink.stop()
    index = read_index(tmp_path)
    assert [(m["to"], m["subject"]) for m in index] == [
        (["ap@example.com"], subject),  # long enough to be folded, read back whole
        (["müller@example.com"], "Grüße"),
    ]
    assert index[0]["message_id"] == mid
    first = message_from_bytes((tmp_path / "mail" / "000001.eml").read_bytes(), policy=default)
    # Lines travel as CRLF (SMTP's line ending); the text is the same.
    assert first.get_content().replace("\r\n", "\n") == body
    assert first["From"] == "billing@o2c.test" and first["Message-ID"] == mid
    assert first["Date"] is not None and first.get_content_charset() == "utf-8"
    second = message_from_bytes((tmp_path / "mail" / "000002.eml").read_bytes(), policy=default)
    assert second["To"] == "müller@example.com"
    assert second.get_content().replace("\r\n", "\n") == "Hallo\n"


class _Refusing(_Connections):
    """Refuses recipients named ``bad@…`` (550); with ``closing`` set, answers the next
    transaction with 421 (closing), as a server that drops idle clients does."""

    def __init__(self) -> None:
        super().__init__()
        self.rcpts: list[str] = []
        self.closing = False

    async def handle_MAIL(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.closing:
            self.closing = False
            return "421 4.4.2 idle too long, closing"
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        self.rcpts.append(address)
        if address.startswith("bad@"):
            return "550 5.1.1 no such user"
        if address.startswith("full@"):
            return "452 4.2.2 mailbox full, try later"
        if not address.startswith("nodata@"):  # accepted, but DATA is then refused (503)
            envelope.rcpt_tos.append(address)
        return "250 OK"


async def test_notifier_answers_a_refusal_once_and_replaces_a_closing_connection(
    tmp_path: Path,
) -> None:
    port = _free_port()
    notifier = _notifier(tmp_path, port)
    server = _Refusing()
    controller = _serve(server, port)
    try:
        await notifier.send_email("k0", "ap@example.com", "First", "x")  # kept after
        with pytest.raises(MessageRefused, match="550"):  # for good: no retry will help
            await notifier.send_email("k1", "bad@example.com", "Refused", "x")
        # Asked once: a refusal is an answer, not a broken connection to try again on.
        assert server.rcpts == ["ap@example.com", "bad@example.com"]

        with pytest.raises(SystemUnavailable, match="452"):  # for now: retried
            await notifier.send_email("k1a", "full@example.com", "Later", "x")
        with pytest.raises(MessageRefused, match="503"):  # the DATA command refused
            await notifier.send_email("k1b", "nodata@example.com", "No data", "x")
        await notifier.send_email("k1c", "ap@example.com", "Next on that connection", "x")
        server.closing = True
        await notifier.send_email("k2", "ap@example.com", "After a 421", "x")
        # k0 on the first connection; the 503 on it (a kept one) was tried once more on a
        # fresh one, which then carried k1c; the 421 closed that: k2 went on a third.
        assert server.rcpts.count("nodata@example.com") == 2
        assert server.rcpts[-1] == "ap@example.com" and len(set(server.peers)) == 3
    finally:
        notifier.close()
        controller.stop()


def test_a_header_value_with_a_line_break_is_refused_not_sent() -> None:
    """A line break would start a header of the sender's choosing (or end the headers)."""
    for to, subject in (("v@e.example\r\n\r\nInjected", "Hi"), ("v@e.example", "Hi\nBcc: x")):
        with pytest.raises(MessageRefused, match="line break"):
            compose("billing@o2c.local", to, subject, "<id@o2c>", "body")
    assert b"Subject: Hi" in compose("billing@o2c.local", "v@e.example", "Hi", "<id@o2c>", "b")
