"""Input refused at the edge, before authentication or any route: oversized bodies and
the NUL character.

A body over ``MAX_BODY`` is answered 413 as soon as its length is known (from
``Content-Length`` or while it streams), so nobody, with a key or without, can make the API
hold large bodies in memory. PostgreSQL cannot store U+0000 in text and fails the
statement; SQLite would store it. Rather than a 500 on one database and a silent success on
the other, a request whose path, query or JSON body carries a NUL is answered 422.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_plus

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import problem

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# The largest body any o2c request needs, with room to spare (a quote of 500 lines is 40 KB).
MAX_BODY = 1024 * 1024


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _body_has_nul(body: bytes) -> bool:
    if b"\x00" in body:
        return True
    if b"\\u0000" not in body:  # the only JSON spelling of NUL inside a string
        return False
    try:
        return _has_nul(json.loads(body))
    except (ValueError, RecursionError):
        return False  # not JSON (or nested past parsing): the route's parsing answers it


class EdgeGuard:
    """ASGI middleware: 413 for a body over ``MAX_BODY``, 422 for a NUL in the path, the
    query string or a JSON body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = unquote_plus(scope.get("query_string", b"").decode("latin-1"))
        if "\x00" in scope["path"] or "\x00" in query:
            await self._refuse(scope, receive, send, "path" if "\x00" in scope["path"] else "query")
            return
        if scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", [])).get(b"content-length", b"0")
        if length.isdigit() and int(length) > MAX_BODY:
            await self._too_large(scope, receive, send)
            return
        messages: list[Message] = []
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_BODY:  # streamed (chunked) past the limit
                await self._too_large(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if _body_has_nul(body):
            await self._refuse(scope, receive, send, "body")
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, where: str) -> None:
        response = problem(
            422,
            "text may not contain the NUL character (U+0000)",
            "invalid_input",
            errors=[{"loc": [where], "msg": "contains U+0000"}],
        )
        await response(scope, receive, send)

    @staticmethod
    async def _too_large(scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(413, f"the body is over {MAX_BODY} bytes", "payload_too_large")
        await response(scope, receive, send)
