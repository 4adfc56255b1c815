"""Builds the concrete systems of record from settings: the only place adapters are picked.

``worker.py``, ``api/app.py`` and the CLI call ``build_systems``; everything else receives
the ``Systems`` bundle (or one port of it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from settings import Settings
from systems.ports import Erp, Notifier, PaymentGateway

log = logging.getLogger("o2c.systems")


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
    if settings.environment == "production" and settings.db_url.startswith("sqlite"):
        log.warning(
            "production on SQLite (%s): another replica of the API or a worker elsewhere "
            "has a database of its own; set O2C_DATABASE_URL to a shared PostgreSQL",
            settings.db_url,
        )
    engine = make_engine(settings.db_url)
    create_schema(engine)
    return Systems(
        erp=EmbeddedErp(engine),
        gateway=SandboxGateway(engine),
        notifier=SmtpNotifier(engine, settings.smtp_target, settings.mail_from),
    )
