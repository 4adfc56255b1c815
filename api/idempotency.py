"""``Idempotency-Key`` for every creating POST, in one place.

The first response to (caller, method, path, key) is stored with a hash of the body; the
same key with the same body answers that response again, with another body 409. Routes
that start a process also get a *seed* derived from the key, so the new resource's id —
and its workflow id — is the same on a retry, and two concurrent retries collide on the
workflow id instead of starting two processes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel

from api.deps import Principal
from domain.errors import Conflict
from systems.ids import new_id, prefixed
from systems.ports import Erp

MAX_KEY = 255
Handler = Callable[[Callable[[str], str]], Awaitable[BaseModel | dict[str, Any]]]


async def idempotent(
    request: Request, who: Principal, erp: Erp, status: int, handler: Handler
) -> Response:
    """Run ``handler(make_id)`` once per Idempotency-Key; ``make_id(prefix)`` gives ids."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return _json(status, await handler(new_id))
    if not 1 <= len(key) <= MAX_KEY:
        raise Conflict(f"Idempotency-Key must be 1 to {MAX_KEY} characters")
    scope = f"{who.key_id}:{request.method}:{request.url.path}"
    digest = hashlib.sha256(await request.body()).hexdigest()
    stored = await run_in_threadpool(erp.idempotency_get, scope, key)
    if stored is not None:
        return _replay(stored, digest)
    seed = hashlib.sha256(f"{scope}:{key}".encode()).hexdigest()

    def make_id(prefix: str) -> str:
        return prefixed(prefix, hashlib.sha256(f"{seed}:{prefix}".encode()).hexdigest())

    response = _json(status, await handler(make_id))
    stored = await run_in_threadpool(
        erp.idempotency_put, scope, key, digest, status, bytes(response.body).decode()
    )
    return _replay(stored, digest)


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
