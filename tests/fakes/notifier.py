"""A notifier that keeps messages in memory, one per idempotency key, and can refuse."""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.errors import MessageRefused


@dataclass
class SentEmail:
    key: str
    to: str
    subject: str
    body: str


@dataclass
class FakeNotifier:
    sent: dict[str, SentEmail] = field(default_factory=dict)
    calls: int = 0
    refused: set[str] = field(default_factory=set)  # recipients the server refuses (5xx)

    async def send_email(self, key: str, to: str, subject: str, body: str) -> str:
        self.calls += 1
        if to in self.refused:
            raise MessageRefused(f"SMTP refused the message to {to}: (550, no such user)")
        if key not in self.sent:
            self.sent[key] = SentEmail(key, to, subject, body)
        return f"msg-{key}"

    def close(self) -> None:
        """Nothing is kept open between messages here."""

    def subjects(self) -> list[str]:
        return [m.subject for m in self.sent.values()]
