"""A lean HTTP/1.1 keep-alive JSON client for load generation.

The benchmark's client shares the machine with the stack it measures; a general client
(httpx) spends about as much CPU per request as the API serving it, CPU the stack then
lacks. This one does only what the benchmark needs: JSON bodies, ``Content-Length``
responses, a pool of persistent connections.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

# Idle connections are retired before the server (uvicorn: 5 s) would close them under us.
IDLE_SECONDS = 2.0


class LoadClient:
    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self._host, self._port = host, port
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._head = f"Host: {host}:{port}\r\nContent-Type: application/json\r\n{extra}"
        self._idle: list[tuple[float, asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Send one request; (status, decoded JSON body or None)."""
        payload = b"" if body is None else json.dumps(body).encode()
        message = (
            f"{method} {path} HTTP/1.1\r\n{self._head}Content-Length: {len(payload)}\r\n\r\n"
        ).encode() + payload
        reader, writer = await self._connection()
        try:
            writer.write(message)
            await writer.drain()
            status, keep, data = await _response(reader)
        except BaseException:
            writer.close()
            raise
        if keep:
            self._idle.append((time.monotonic(), reader, writer))
        else:
            writer.close()
        return status, (json.loads(data) if data else None)

    async def close(self) -> None:
        for _, _, writer in self._idle:
            writer.close()
        self._idle.clear()

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        now = time.monotonic()
        while self._idle:
            used, reader, writer = self._idle.pop()
            if now - used < IDLE_SECONDS and not reader.at_eof():
                return reader, writer
            writer.close()
        return await asyncio.open_connection(self._host, self._port)


async def _response(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    line = await reader.readline()
    if not line:
        raise ConnectionError("the server closed the connection")
    version, status, _ = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" not in headers:
        raise ConnectionError("only Content-Length responses are supported")
    data = await reader.readexactly(int(headers["content-length"]))
    keep = headers.get("connection", "").lower() != "close" and version == "HTTP/1.1"
    return int(status), keep, data
