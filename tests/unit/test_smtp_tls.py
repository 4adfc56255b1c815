"""E-mail to a relay that wants TLS: STARTTLS with a verified certificate before logging in,
and never credentials over an unencrypted connection to another host."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from domain.errors import SystemUnavailable
from systems.db import create_schema, make_engine
from systems.notify import smtp
from systems.notify.smtp import SmtpNotifier
from tests.unit.test_gateway import _free_port

USER, PASSWORD = "o2c", "s3cret"


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: (certificate, key) files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "o2c test relay")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "relay.pem", folder / "relay.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


class _Relay:
    """A submission relay: AUTH only after STARTTLS; notes who sent what, encrypted or not."""

    def __init__(self) -> None:
        self.logins: list[tuple[bytes, bool]] = []
        self.messages: list[tuple[str, bool]] = []

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((data.login, session.ssl is not None))
        return AuthResult(
            success=data.login == USER.encode() and data.password == PASSWORD.encode()
        )

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append((envelope.mail_from, session.ssl is not None))
        return "250 OK"


@contextmanager
def _relay(folder: Path, *, tls: bool, login: bool = True) -> Iterator[tuple[_Relay, SmtpNotifier]]:
    """A relay (with a self-signed certificate for STARTTLS if ``tls``) and a notifier that
    logs in to it (if ``login``)."""
    port, relay, context = _free_port(), _Relay(), None
    if tls:
        cert, key = _certificate(folder)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
    controller = Controller(
        relay,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=tls,
        authenticator=relay.authenticate,
        auth_required=login,
        auth_require_tls=tls,
    )
    controller.start()
    log = make_engine(f"sqlite:///{folder / 'n.db'}")
    create_schema(log)
    url = f"smtp://{USER}:{PASSWORD}@127.0.0.1:{port}" if login else f"smtp://127.0.0.1:{port}"
    notifier = SmtpNotifier(log, url, "billing@o2c.test")
    try:
        yield relay, notifier
    finally:
        notifier.close()
        controller.stop()


async def test_a_relay_offering_starttls_gets_encryption_before_the_login(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(smtp, "_on_this_host", lambda host: False)  # a relay elsewhere
    with _relay(tmp_path, tls=True) as (relay, notifier):
        with pytest.raises(SystemUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            await notifier.send_email("k0", "x@example.com", "Untrusted relay", "hello")
        assert relay.logins == [] and relay.messages == []
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "relay.pem"))  # a private CA
        await notifier.send_email("k1", "x@example.com", "Order confirmed", "hello")
        assert relay.logins == [(USER.encode(), True)]
        assert relay.messages == [("billing@o2c.test", True)]


# The plain relay below is the insecure setup aiosmtpd warns about: on purpose.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_credentials_are_never_sent_unencrypted_to_another_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _relay(tmp_path, tls=False) as (relay, notifier):
        # On this host (a local relay or sink) a plain login is allowed.
        await notifier.send_email("k1", "x@example.com", "Local relay", "hello")
        assert relay.logins == [(USER.encode(), False)]
        notifier.close()
        monkeypatch.setattr(smtp, "_on_this_host", lambda host: False)  # as if remote
        with pytest.raises(SystemUnavailable, match="offers no STARTTLS"):
            await notifier.send_email("k2", "x@example.com", "Remote relay", "hello")
        assert len(relay.logins) == 1 and len(relay.messages) == 1


async def test_a_relay_on_this_host_is_encrypted_to_even_with_a_self_signed_certificate(
    tmp_path: Path,
) -> None:
    # A distribution's default Postfix: STARTTLS with a snake-oil certificate, no login.
    with _relay(tmp_path, tls=True, login=False) as (relay, notifier):
        await notifier.send_email("k1", "x@example.com", "Order confirmed", "hello")
        assert relay.messages == [("billing@o2c.test", True)]
