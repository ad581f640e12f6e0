"""The benchmark's mail relay: a minimal SMTP responder on loopback.

It stands in for the relay a production service hands its mail to on another
machine: it speaks enough SMTP for any client (EHLO, MAIL, RCPT, DATA, RSET, NOOP,
QUIT) and keeps each message's bytes, but checks and stores nothing else. The dev
sink (aiosmtpd, service/mail/sink.py) costs about 1.5 ms of CPU per mail on a small
VM, which would weigh on this machine's cores as if it were the service's own work.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from email.message import EmailMessage
from typing import cast

_EHLO = b"250-bench-relay\r\n250-8BITMIME\r\n250 SIZE 10485760\r\n"
_REPLIES = {
    b"MAIL": b"250 OK\r\n",
    b"RCPT": b"250 OK\r\n",
    b"RSET": b"250 OK\r\n",
    b"NOOP": b"250 OK\r\n",
    b"DATA": b"354 End data with <CR><LF>.<CR><LF>\r\n",
}


class _Session(asyncio.Protocol):
    def __init__(self, relay: Relay) -> None:
        self._relay = relay
        self._buffer = b""
        self._data: list[bytes] | None = None  # lines of the message being received
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self._transport = cast(asyncio.Transport, transport)
        self._transport.write(b"220 bench-relay ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\r\n")
        for line in lines:
            if self._data is not None:
                if line == b".":
                    self._relay.received(b"\r\n".join(self._data))
                    self._data = None
                    self._transport.write(b"250 OK\r\n")
                else:
                    self._data.append(line)
                continue
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self._transport.write(_EHLO)
            elif verb == b"QUIT":
                self._transport.write(b"221 Bye\r\n")
                self._transport.close()
            elif verb in _REPLIES:
                if verb == b"DATA":
                    self._data = []
                self._transport.write(_REPLIES[verb])
            else:
                self._transport.write(b"500 Unknown command\r\n")


class Relay:
    """Accepts every message on 127.0.0.1; keeps the raw bytes."""

    def __init__(self) -> None:
        self.raw: list[bytes] = []
        self._arrived = asyncio.Event()
        self._server: asyncio.AbstractServer | None = None

    def received(self, raw: bytes) -> None:
        """A whole message arrived."""
        self.raw.append(raw)
        self._arrived.set()

    async def start(self) -> int:
        """Listen on a free loopback port; returns it."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Session(self), "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def mail_to(self, address: str, timeout: float = 30.0) -> EmailMessage:
        """The first message to `address`, waiting for it to arrive."""
        async with asyncio.timeout(timeout):
            while True:
                for raw in self.raw:
                    msg = email.message_from_bytes(raw, policy=email.policy.default)
                    assert isinstance(msg, EmailMessage)
                    if str(msg["To"]) == address:
                        return msg
                self._arrived.clear()
                await self._arrived.wait()
