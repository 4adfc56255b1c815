"""A local SMTP sink for ``make run``: keeps every message in the data folder.

Each message is written as ``<data_dir>/mail/<n>.eml`` and indexed in ``index.jsonl``.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class _Handler:
    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._lock = threading.Lock()
        self._count = len(list(folder.glob("*.eml")))

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        raw: bytes = envelope.original_content or envelope.content
        msg = message_from_bytes(raw, policy=policy.default)
        with self._lock:
            self._count += 1
            (self._folder / f"{self._count:06d}.eml").write_bytes(raw)
            entry = {
                "message_id": str(msg.get("Message-ID", "")),
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "subject": str(msg.get("Subject", "")),
                "received_at": datetime.now(UTC).isoformat(),
            }
            with (self._folder / "index.jsonl").open("a") as f:
                f.write(json.dumps(entry) + "\n")
        return "250 Message accepted"


def start_sink(data_dir: Path, port: int) -> Controller:
    """Start the sink on 127.0.0.1:``port``; call ``.stop()`` on the result to end it."""
    folder = Path(data_dir) / "mail"
    folder.mkdir(parents=True, exist_ok=True)
    controller = Controller(_Handler(folder), hostname="127.0.0.1", port=port, enable_SMTPUTF8=True)
    controller.start()
    return controller


def read_index(data_dir: Path) -> list[dict[str, Any]]:
    """The messages the sink has kept, oldest first."""
    index = Path(data_dir) / "mail" / "index.jsonl"
    if not index.exists():
        return []
    return [json.loads(line) for line in index.read_text().splitlines() if line.strip()]
