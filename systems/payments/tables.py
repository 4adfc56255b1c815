"""Tables of the sandbox gateway (``gw_``): tokens, charges and refunds, keyed."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Column
from sqlmodel import Field, SQLModel

from systems.db import DecimalText, UtcDateTime, utcnow


class TokenRow(SQLModel, table=True):
    __tablename__ = "gw_tokens"
    token: str = Field(primary_key=True)
    # No longer written: a fingerprint keyed in the same database could be reversed to the
    # card number from its last four digits (kept so existing databases need no migration).
    fingerprint: str = Field(default="", index=True)
    behaviour: str
    brand: str
    last4: str
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime()))


class ChargeRow(SQLModel, table=True):
    __tablename__ = "gw_charges"
    key: str = Field(primary_key=True)
    charge_id: str = Field(unique=True)
    token: str = Field(index=True)
    amount: Decimal = Field(sa_column=Column(DecimalText()))
    currency: str
    status: str  # succeeded | declined
    decline_code: str | None = None
    refunded: Decimal = Field(default=Decimal(0), sa_column=Column(DecimalText()))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime()))


class AttemptRow(SQLModel, table=True):
    """How often each key was tried (the 0119 card fails its first two attempts)."""

    __tablename__ = "gw_attempts"
    key: str = Field(primary_key=True)
    attempts: int = 0


class RefundRow(SQLModel, table=True):
    __tablename__ = "gw_refunds"
    key: str = Field(primary_key=True)
    refund_id: str = Field(unique=True)
    charge_id: str = Field(index=True)
    amount: Decimal = Field(sa_column=Column(DecimalText()))
