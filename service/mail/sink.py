"""A local SMTP sink (aiosmtpd): stores every message, logs the links in it."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import re
from collections import deque
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session

log = logging.getLogger(__name__)
_LINK = re.compile(r"https?://\S+")


class MailSink:
    """Receives mail on loopback, internationalised addresses too (SMTPUTF8).

    To exercise the mailer, it can refuse the first `fail_first` messages with a
    temporary error, refuse the recipients in `refused_recipients` for good, and go
    without SMTPUTF8 (`smtputf8=False`). Keeps the last `keep` messages in memory for
    its readers (tests); the directory, when given, gets every one.
    """

    def __init__(
        self,
        directory: Path | None = None,
        fail_first: int = 0,
        keep: int = 1000,
        *,
        smtputf8: bool = True,
    ) -> None:
        self.directory = directory
        self.fail_first = fail_first
        self.smtputf8 = smtputf8
        self.refused_recipients: set[str] = set()  # lower-case addresses
        self.received = 0  # messages accepted so far
        self._saved = 0  # number of the newest file in the directory
        # Each kept message's bytes, and its parsed form once a reader asked.
        self._kept: deque[tuple[bytes, list[EmailMessage]]] = deque(maxlen=keep)
        self.refused = 0
        self._server: asyncio.AbstractServer | None = None
        self._sessions: list[SMTP] = []
        self.connections = 0  # SMTP connections accepted so far
        self._arrived = asyncio.Condition()
        self.port = 0

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        """aiosmtpd hook: take a recipient, unless told to refuse it for good."""
        if address.lower() in self.refused_recipients:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """aiosmtpd hook: accept (or deliberately refuse) one message."""
        if self.refused < self.fail_first:
            self.refused += 1
            return "451 4.3.0 Try again later"
        raw: bytes = envelope.original_content or envelope.content  # type: ignore[assignment]
        self.received += 1
        self._kept.append((raw, []))
        if self.directory is not None:
            self._saved += 1
            (self.directory / f"{self._saved:06d}.eml").write_bytes(raw)
        # The local sink is a development tool: its links are logged unredacted on
        # purpose (they are how a developer confirms an account without a mailbox).
        if log.isEnabledFor(logging.INFO):
            log.info(
                "mail to %s",
                ", ".join(envelope.rcpt_tos),
                extra={"fields": {"links": _links_in_raw(raw)}},
            )
        async with self._arrived:
            self._arrived.notify_all()
        return "250 OK"

    @property
    def messages(self) -> list[EmailMessage]:
        """The kept messages, oldest first, parsed (lazily: parsing is for readers, not
        for the SMTP conversation)."""
        for raw, parsed in self._kept:
            if not parsed:
                msg = email.message_from_bytes(raw, policy=email.policy.default)
                assert isinstance(msg, EmailMessage)
                parsed.append(msg)
        return [parsed[0] for _, parsed in self._kept]

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on host:port (0 picks a free port); returns the port."""
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            # After a restart, numbering goes on: the folder keeps every mail.
            self._saved = max(
                (int(p.stem) for p in self.directory.glob("*.eml") if p.stem.isdigit()),
                default=0,
            )
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._session, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def _session(self) -> SMTP:
        self.connections += 1
        session = SMTP(
            self,
            hostname="glue-sink",
            ident="glue-customers sink",
            enable_SMTPUTF8=self.smtputf8,
        )
        self._sessions = [s for s in self._sessions if s.transport is not None]
        self._sessions.append(session)
        return session

    def drop_connections(self) -> None:
        """Hang up on every connected client, as a server closing idle sessions does."""
        for session in self._sessions:
            if session.transport is not None:
                session.transport.close()

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def wait_for(
        self, predicate: Callable[[EmailMessage], bool], timeout: float = 10.0
    ) -> EmailMessage:
        """The first stored message matching `predicate`, waiting for it to arrive."""

        def found() -> EmailMessage | None:
            return next((m for m in self.messages if predicate(m)), None)

        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: found() is not None), timeout)
        result = found()
        assert result is not None
        return result

    def to(self, address: str) -> list[EmailMessage]:
        """Every stored message for one recipient."""
        return [m for m in self.messages if str(m["To"]).lower() == address.lower()]


def _links_in_raw(raw: bytes) -> list[str]:
    # compat32 parsing: a fraction of the cost of the default policy's header objects.
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    texts = [part.get_payload(decode=True) for part in msg.walk() if not part.is_multipart()]
    return _LINK.findall(
        " ".join(t.decode(errors="replace") for t in texts if isinstance(t, bytes))
    )


def links_in(msg: EmailMessage) -> list[str]:
    """Every URL in a message's plain-text body."""
    body = msg.get_body(("plain",))
    return _LINK.findall(body.get_content() if body is not None else "")
