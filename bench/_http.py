"""A minimal HTTP/1.1 keep-alive client for load windows, the way wrk is one.

The load generator shares the machine's cores with the service it measures: every
millisecond it spends building and parsing requests is taken from the service. A
general client (aiohttp's) costs about 0.5 ms of CPU per request on a small VM;
this one writes prepared bytes and reads back the status line, the Content-Length
and the body, and nothing more. It speaks to our own service only: it expects a
Content-Length on every response (aiohttp's web.Response always sends one).
"""

from __future__ import annotations

import asyncio
from typing import cast

_HEAD_END = b"\r\n\r\n"
_LENGTH = b"\r\ncontent-length:"


class ProtocolError(Exception):
    """The server's answer was not what this client can read."""


class _Reader(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc or ConnectionResetError("server closed"))

    def expect(self) -> asyncio.Future[tuple[int, bytes]]:
        self._waiter = asyncio.get_running_loop().create_future()
        return self._waiter

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        head_end = self._buffer.find(_HEAD_END)
        if head_end < 0 or self._waiter is None or self._waiter.done():
            return
        head = bytes(self._buffer[:head_end]).lower()
        at = head.find(_LENGTH)
        line_end = head.find(b"\r\n", at + 2)
        try:
            if not head.startswith(b"http/1.1 ") or at < 0:
                raise ValueError("no HTTP/1.1 status line or no Content-Length")
            status = int(head[9:12])
            length = int(head[at + len(_LENGTH) : line_end if line_end > 0 else None])
        except ValueError:
            self._waiter.set_exception(ProtocolError(head[:200].decode(errors="replace")))
            return
        body_start = head_end + len(_HEAD_END)
        if len(self._buffer) < body_start + length:
            return
        body = bytes(self._buffer[body_start : body_start + length])
        del self._buffer[: body_start + length]
        self._waiter.set_result((status, body))


class Connection:
    """One keep-alive connection; one request at a time."""

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._reader: _Reader | None = None

    async def request(self, method: str, path: str, body: bytes, content_type: str) -> int:
        """Send one request; its status (the body is read and dropped)."""
        if self._reader is None or self._reader.transport is None:
            _, self._reader = await asyncio.get_running_loop().create_connection(
                _Reader, self._host, self._port
            )
        assert self._reader.transport is not None
        answer = self._reader.expect()
        self._reader.transport.write(
            f"{method} {path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        try:
            status, _ = await answer
        except BaseException:
            self.close()  # a half-read answer would be taken for the next one's
            raise
        return status

    def close(self) -> None:
        """Drop the connection."""
        if self._reader is not None and self._reader.transport is not None:
            self._reader.transport.close()
        self._reader = None
