"""The mailer subscriber: confirmation and restore mails, once per event."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from uuid import UUID

import aiosmtplib
import asyncpg

from events.subscribers import RetryLater
from events.types import RecordedEvent
from service.auth.onetime import REGISTRATION, RESTORE, OneTimeKeys
from service.config import Settings
from service.mail import messages
from service.mail.connection import (
    SmtpConnection,
    SmtpTarget,
    Undeliverable,
    describe,
    is_permanent,
)
from service.mail.messages import Mail
from service.metrics import Metrics

log = logging.getLogger(__name__)

__all__ = ["Mailer", "SmtpTarget"]


class Mailer:
    """Sends the mail an event asks for; a delivery row per event id makes it once-only.

    Works in batches (events.subscribers.Batching): one lookup per batch of what was
    delivered already. Each delivery is recorded right after its mail went out, so a
    crash can send at most the one mail in flight twice (with the same Message-ID).
    """

    name = "mailer"
    types = ("CustomerCreated", "CustomerPasswordResetRequested")

    def __init__(
        self,
        pool: asyncpg.Pool,
        smtp: SmtpTarget,
        keys: OneTimeKeys,
        settings: Settings,
        metrics: Metrics | None = None,
    ) -> None:
        self._pool = pool
        self._smtp = SmtpConnection(smtp)
        self._keys = keys
        self._settings = settings
        self._metrics = metrics
        # A lone registration's mail leaves at once; under a stream, mails go out in
        # batches at most this often (a confirmation mail may well be 0.2 s later).
        self.pass_interval = settings.mail_batch_seconds
        # Of the batch in hand: what went out (or was given up) before, and since.
        self._delivered: set[UUID] = set()

    async def prepare(self, events: Sequence[RecordedEvent]) -> None:
        """Look up which of the batch's mails went out (or were given up) already, in one
        query."""
        rows = await self._pool.fetch(
            """SELECT event_id FROM mail_deliveries
               WHERE event_id = ANY($1::uuid[])
                 AND (delivered_at IS NOT NULL OR failed_at IS NOT NULL)""",
            [e.event_id for e in events],
        )
        self._delivered = {r["event_id"] for r in rows}

    async def flush(self) -> None:
        """Nothing to write: each delivery is recorded as soon as its mail went out."""

    async def handle(self, event: RecordedEvent) -> None:
        """Send the event's mail unless it was delivered already."""
        if event.erased:
            return  # the customer was anonymised before we got to it
        if event.event_id in self._delivered:
            return
        composed = await self._compose(event)
        if composed is None:
            return
        recipient, msg = composed
        try:
            await self._smtp.send(msg, self._settings.mail_from, recipient)
        except (Undeliverable, aiosmtplib.SMTPException, OSError) as exc:
            if self._metrics is not None:
                self._metrics.mail_failures.inc()
            if is_permanent(exc):
                # Retrying would hold back every later mail behind this one for ever.
                await self._give_up(event, exc)
                return
            await self._record(event, delivered=False)
            raise RetryLater(f"SMTP: {describe(exc)}") from exc
        # At once, not once per batch: a crash now re-sends at most this one mail.
        await self._record(event, delivered=True)
        self._delivered.add(event.event_id)
        if self._metrics is not None:
            self._metrics.mail_sent.labels(event.event_type).inc()

    async def _give_up(self, event: RecordedEvent, exc: BaseException) -> None:
        """Record a mail the relay refused for good, so it is neither retried nor lost
        from sight (the reason stays in mail_deliveries and in the log)."""
        reason = describe(exc)
        log.error(
            "mail for event %s given up: %s",
            event.event_id,
            reason,
            extra={"fields": {"kind": event.event_type, "stream": event.stream_id}},
        )
        if self._metrics is not None:
            self._metrics.mail_undeliverable.labels(event.event_type).inc()
        await self._record(event, delivered=False, failure=reason)

    async def _record(
        self, event: RecordedEvent, *, delivered: bool, failure: str | None = None
    ) -> None:
        """Count one attempt at the event's mail: delivered, given up (`failure`), or
        neither (to be retried)."""
        await self._pool.execute(
            """INSERT INTO mail_deliveries (event_id, kind, attempts, delivered_at, failed_at,
                                            failure)
               VALUES ($1, $2, 1, CASE WHEN $3 THEN now() END,
                       CASE WHEN $4::text IS NOT NULL THEN now() END, $4)
               ON CONFLICT (event_id) DO UPDATE
               SET attempts = mail_deliveries.attempts + 1,
                   delivered_at = coalesce(excluded.delivered_at, mail_deliveries.delivered_at),
                   failed_at = coalesce(excluded.failed_at, mail_deliveries.failed_at),
                   failure = coalesce(excluded.failure, mail_deliveries.failure)""",
            event.event_id,
            event.event_type,
            delivered,
            failure,
        )

    async def close(self) -> None:
        """Close the SMTP connection (after the subscriber runtime stopped)."""
        await self._smtp.close()

    async def _compose(self, event: RecordedEvent) -> tuple[str, Mail] | None:
        """(recipient, mail) the event asks for; None when there is nobody to mail."""
        sender = self._settings.mail_from
        message_id = f"<{event.event_id}@glue-customers>"
        base = self._settings.storefront_url
        if event.event_type == "CustomerCreated":
            key = self._keys.key(REGISTRATION, event.event_id)
            link = f"{base}/register/confirm?token={key}"
            email = event.payload["email"]
            return email, messages.confirmation(sender, email, link, message_id)
        ref = event.stream_id.removeprefix("customer-")
        email = await self._pool.fetchval(
            "SELECT email FROM customers WHERE customer_reference = $1", ref
        )
        if email is None:
            return None
        key = self._keys.key(RESTORE, event.event_id)
        link = f"{base}/password/restore?token={key}"
        return email, messages.password_restore(sender, email, link, message_id)
