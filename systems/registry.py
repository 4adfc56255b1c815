"""Builds the concrete systems of record from settings: the only place adapters are picked.

``worker.py``, ``api/app.py`` and the CLI call ``build_systems``; everything else receives
the ``Systems`` bundle (or one port of it).
"""

from __future__ import annotations

from dataclasses import dataclass

from settings import Settings
from systems.ports import Erp, Notifier, PaymentGateway


@dataclass(frozen=True)
class Systems:
    """The ports one process uses; ``erp`` also holds the sandbox fault modes."""

    erp: Erp
    gateway: PaymentGateway
    notifier: Notifier


def build_systems(settings: Settings) -> Systems:
    """Embedded ERP on ``settings.db_url``, the sandbox gateway, SMTP notifications."""
    from systems.db import create_schema, make_engine
    from systems.erp.embedded import EmbeddedErp
    from systems.notify.smtp import SmtpNotifier
    from systems.payments.sandbox import SandboxGateway

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.db_url)
    create_schema(engine)
    return Systems(
        erp=EmbeddedErp(engine),
        gateway=SandboxGateway(engine),
        notifier=SmtpNotifier(engine, settings.smtp_target, settings.mail_from),
    )
