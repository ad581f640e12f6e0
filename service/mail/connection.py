"""One SMTP connection kept open across mails, reopened when the server dropped it."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import aiosmtplib

from service.mail.messages import Mail


class Undeliverable(Exception):
    """The relay will never take this message as it is (a permanent refusal)."""


def is_permanent(exc: BaseException) -> bool:
    """Whether an SMTP failure is about this message and final, not about the relay's
    health or our configuration (those are retried until they are fixed). 5xx replies
    are the ones RFC 5321 §4.2.1 calls permanent."""
    if isinstance(exc, Undeliverable):
        return True
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return bool(exc.recipients) and all(r.code >= 500 for r in exc.recipients)
    # A refused sender or failed AUTH is a setting of ours: every mail would fail alike.
    return isinstance(exc, aiosmtplib.SMTPRecipientRefused | aiosmtplib.SMTPDataError) and (
        exc.code >= 500
    )


def describe(exc: BaseException) -> str:
    """A failure in words fit to keep: the exception and the reply code, not the server's
    text, which may quote the address (and logs and tables outlive a shredded customer)."""
    if isinstance(exc, Undeliverable):
        return str(exc)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = ", ".join(str(r.code) for r in exc.recipients)
        return f"{type(exc).__name__} {codes}"
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"{type(exc).__name__} {exc.code}"
    return f"{type(exc).__name__}: {exc}"


@dataclass
class SmtpTarget:
    """Where mail goes."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout: float = 10.0


class SmtpConnection:
    """Sends messages over one connection instead of one per mail.

    Connecting, EHLO, STARTTLS and AUTH cost more than a message itself (about
    twice the CPU against the local sink), so the connection stays open. A
    connection the server closed while idle is reopened and the message sent
    again at once; any other failure drops the connection and is the caller's
    to retry (the mailer backs off).
    """

    def __init__(self, target: SmtpTarget) -> None:
        self._target = target
        self._client: aiosmtplib.SMTP | None = None

    async def send(self, msg: Mail, sender: str, recipient: str) -> None:
        """Deliver one message (raises Undeliverable, aiosmtplib.SMTPException or OSError)."""
        reused = self._client is not None and self._client.is_connected
        try:
            await self._send(msg, sender, recipient)
        except (aiosmtplib.SMTPServerDisconnected, ConnectionError):
            self._drop()
            if not reused:
                raise
            # The server had hung up on the idle connection: once more on a fresh one.
            try:
                await self._send(msg, sender, recipient)
            except BaseException:
                self._drop()
                raise
        except Undeliverable:
            raise  # refused before any command was sent: the session is still clean
        except BaseException:
            # After a refusal or a cancel the session state is unknown: start afresh.
            self._drop()
            raise

    async def _send(self, msg: Mail, sender: str, recipient: str) -> None:
        if self._client is None or not self._client.is_connected:
            t = self._target
            client = aiosmtplib.SMTP(
                hostname=t.host,
                port=t.port,
                username=t.username,
                password=t.password,
                start_tls=t.starttls,
                timeout=t.timeout,
            )
            self._client = client
            await client.connect()
        # Only the recipient is this message's own: a non-ASCII MAIL_FROM is a setting,
        # and aiosmtplib's refusal of it is retried until the setting is fixed.
        if not recipient.isascii():
            if self._client.is_ehlo_or_helo_needed:
                await self._client.ehlo()  # what the relay offers is known after EHLO
            if not self._client.supports_extension("smtputf8"):
                raise Undeliverable("the relay does not offer SMTPUTF8, which this address needs")
        if isinstance(msg, bytes):
            await self._client.sendmail(sender, [recipient], msg)
        else:
            # Envelope given, not parsed back out of the headers.
            await self._client.send_message(msg, sender=sender, recipients=[recipient])

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def close(self) -> None:
        """Say QUIT (when still connected) and drop the connection."""
        client, self._client = self._client, None
        if client is None:
            return
        if client.is_connected:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit()
        client.close()
