"""The notifier's send log: one row per idempotency key, so a retry never re-sends."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column
from sqlmodel import Field, SQLModel

from systems.db import UtcDateTime, utcnow


class MessageRow(SQLModel, table=True):
    __tablename__ = "notify_messages"
    key: str = Field(primary_key=True)
    message_id: str
    recipient: str
    subject: str
    status: str = "sending"  # sending | sent
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime()))
