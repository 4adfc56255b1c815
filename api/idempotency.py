"""``Idempotency-Key`` for every creating POST, in one place.

The first response to (caller, method, path, key) is stored with a hash of the body; the
same key with the same body answers that response again, with another body 409. A
duplicate that arrives while the first request still runs waits for its answer (409 if it
takes longer than ten seconds); a key longer than 255 characters is invalid input (422). Routes
that start a process also get a *seed* derived from the key, so the new resource's id —
and its workflow id — is the same on a retry, and two concurrent retries collide on the
workflow id instead of starting two processes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial
from typing import Any

from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel

from api.deps import Principal
from domain.errors import Conflict, InvalidInput
from systems.ids import new_id, prefixed
from systems.ports import Erp
from systems.records import IDEMPOTENCY_PENDING as PENDING

MAX_KEY = 255
# The header as the OpenAPI document declares it on every creating POST (``openapi_extra``).
IDEMPOTENT: dict[str, Any] = {
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY},
            "description": "The same key with the same body answers the first response "
            "again (nothing is created twice); with another body, 409.",
        }
    ]
}
# A request holding a key this long without answering is taken to have died with its
# process: a retry may take the key over.
STALE_CLAIM = timedelta(seconds=60)
# How long a duplicate waits for the request under way with the same key before answering
# 409 (retry later) instead of the first response.
WAIT_FOR_FIRST = 10.0
POLL = 0.05
Handler = Callable[[Callable[[str], str]], Awaitable[BaseModel | dict[str, Any]]]


async def idempotent(
    request: Request,
    who: Principal,
    erp: Erp,
    status: int,
    handler: Handler,
    *,
    compared: Callable[[Any, bytes], Any] | None = None,
    sealed: tuple[str, ...] = (),
) -> Response:
    """Run ``handler(make_id)`` once per Idempotency-Key; ``make_id(prefix)`` gives ids.

    The key is claimed before the handler runs, so concurrent duplicates wait for the first
    one's answer instead of running again; a handler that fails gives the key back.

    What is kept must not reveal secrets: ``compared(body, pepper)`` is the part of a JSON
    body whose hash tells requests apart, where a secret field is to be kept only keyed by
    ``pepper`` (a card number, so another card under the same key is a 409 and the stored
    hash cannot be searched for the card); ``pepper`` and the seal of the answer's
    ``sealed`` fields (a new API key's secret) derive from the caller's own key, which is
    never stored: only that caller can compare or open them."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return _json(status, await handler(new_id))
    if not 1 <= len(key) <= MAX_KEY:
        raise InvalidInput(
            f"Idempotency-Key must be 1 to {MAX_KEY} characters", ("header", "Idempotency-Key")
        )
    scope = f"{who.key_id}:{request.method}:{request.url.path}"
    secret = _caller_secret(request)
    pepper = hmac.new(secret, f"o2c/idempotency/compare:{scope}:{key}".encode(), "sha256")
    digest = _request_hash(await request.body(), compared, pepper.digest())
    seal = _Seal(secret, f"{scope}:{key}", sealed)
    stored = await _claim(erp, scope, key, digest)
    if stored is not None:
        return _replay(seal.open(stored), digest)
    try:
        response = _json(status, await handler(partial(derived_id, scope, key)))
    except BaseException:
        await run_in_threadpool(erp.idempotency_release, scope, key)
        raise
    stored = await run_in_threadpool(
        erp.idempotency_complete, scope, key, status, seal.close(bytes(response.body).decode())
    )
    return _replay(seal.open(stored), digest)


def derived_id(scope: str, key: str, prefix: str) -> str:
    """The id a request under ``key`` gives what it makes (``prefix_…``): the same on every
    retry, so a retry that runs again (its first answer lost) makes nothing new."""
    seed = hashlib.sha256(f"{scope}:{key}".encode()).hexdigest()
    return prefixed(prefix, hashlib.sha256(f"{seed}:{prefix}".encode()).hexdigest())


async def _claim(erp: Erp, scope: str, key: str, digest: str) -> tuple[str, int, str] | None:
    """None once this request holds the key, else the first request's stored answer."""
    deadline = time.monotonic() + WAIT_FOR_FIRST
    while True:
        stored = await run_in_threadpool(erp.idempotency_claim, scope, key, digest, STALE_CLAIM)
        if stored is None or stored[1] != PENDING or stored[0] != digest:
            return stored  # held, answered, or another body (409 in _replay)
        while stored is not None and stored[1] == PENDING:
            if time.monotonic() > deadline:
                raise Conflict("a request with this Idempotency-Key is still under way; retry")
            await asyncio.sleep(POLL)
            stored = await run_in_threadpool(erp.idempotency_get, scope, key)
        if stored is not None:
            return stored
        # The first request failed and gave the key back: claim it for this one.


def _request_hash(
    body: bytes, compared: Callable[[Any, bytes], Any] | None = None, pepper: bytes = b""
) -> str:
    """The body's hash, of its JSON in one canonical spelling (key order and whitespace do
    not make another request), or of ``compared(body, pepper)``."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        if compared is not None:  # never a hash of a body holding secrets
            raise InvalidInput("the body is not JSON") from None
        return hashlib.sha256(body).hexdigest()
    if compared is not None:  # the route validated the body: its fields are there
        data = compared(data, pepper)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _caller_secret(request: Request) -> bytes:
    return request.headers.get("Authorization", "").removeprefix("Bearer ").strip().encode()


class _Seal:
    """Encrypts chosen string fields of a stored answer with a one-time pad drawn from
    HMAC-SHA256 under the caller's secret and the idempotency key (one pad per key)."""

    def __init__(self, secret: bytes, context: str, fields: tuple[str, ...]) -> None:
        self._key = hmac.new(secret, f"o2c/idempotency/seal:{context}".encode(), "sha256").digest()
        self._fields = fields

    def _pad(self, n: int) -> bytes:
        blocks = (n + 31) // 32
        return b"".join(
            hmac.new(self._key, i.to_bytes(4, "big"), "sha256").digest() for i in range(blocks)
        )[:n]

    def _xor(self, raw: bytes) -> bytes:
        return bytes(a ^ b for a, b in zip(raw, self._pad(len(raw)), strict=True))

    def close(self, body: str) -> str:
        if not self._fields:
            return body
        data = json.loads(body)
        for name in self._fields:
            data[name] = "sealed:" + base64.b64encode(self._xor(str(data[name]).encode())).decode()
        return json.dumps(data)

    def open(self, stored: tuple[str, int, str]) -> tuple[str, int, str]:
        request_hash, status, body = stored
        if not self._fields or status == PENDING:
            return stored
        data = json.loads(body)
        for name in self._fields:
            raw = base64.b64decode(str(data[name]).removeprefix("sealed:"))
            data[name] = self._xor(raw).decode()
        return request_hash, status, json.dumps(data)


def _replay(stored: tuple[str, int, str], digest: str) -> Response:
    request_hash, status, body = stored
    if request_hash != digest:
        raise Conflict("this Idempotency-Key was used with a different request body")
    return Response(body, status_code=status, media_type="application/json")


def _json(status: int, payload: BaseModel | dict[str, Any]) -> Response:
    data = payload.model_dump(mode="json") if isinstance(payload, BaseModel) else payload
    return Response(
        json.dumps(jsonable_encoder(data)), status_code=status, media_type="application/json"
    )
