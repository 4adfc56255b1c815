"""Prefixed resource ids (``cus_…``, ``inv_…``) for records created outside workflows.

Workflows make their ids from ``workflow.uuid4()`` with ``prefixed`` so replays agree.
"""

from __future__ import annotations

import secrets
import uuid


def prefixed(prefix: str, value: uuid.UUID | str) -> str:
    """``prefix`` + ``_`` + 24 hex characters of ``value``."""
    text = value.hex if isinstance(value, uuid.UUID) else value
    return f"{prefix}_{text.replace('-', '')[:24]}"


def new_id(prefix: str) -> str:
    """A fresh random id such as ``cus_3f9a…``."""
    return prefixed(prefix, secrets.token_hex(12))
