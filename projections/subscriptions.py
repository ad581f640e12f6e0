"""The availability-notification subscriptions read model.

Its unique key on (email_lower, sku) is written inside the append transaction, so
a second subscription of one email to one SKU fails there, under any concurrency.
"""

from __future__ import annotations

import asyncpg

from events.types import RecordedEvent
from projections.customers import reference_of
from projections.registry import Projector

projector = Projector(name="subscriptions", tables=("availability_subscriptions",))


@projector.on("AvailabilityNotificationSubscribed")
async def _subscribed(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    p = event.payload
    await conn.execute(
        """INSERT INTO availability_subscriptions (subscription_key, customer_reference, email,
               email_lower, sku, locale_name, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        p["subscription_key"],
        p.get("customer_reference"),
        p["email"],
        # Python's lower(), as everywhere else an email is compared.
        p["email"].lower(),
        p["sku"],
        p["locale_name"],
        event.recorded_at,
    )


@projector.on("AvailabilityNotificationUnsubscribed")
async def _unsubscribed(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    await conn.execute(
        "DELETE FROM availability_subscriptions WHERE subscription_key = $1",
        event.payload["subscription_key"],
    )


@projector.on("CustomerAnonymized")
async def _anonymized(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    # Only the customer's own subscriptions: an anonymous one with the same email
    # was made without the account and is not theirs to take down.
    await conn.execute(
        "DELETE FROM availability_subscriptions WHERE customer_reference = $1", reference_of(event)
    )
