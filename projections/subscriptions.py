"""The availability-notification subscriptions read model."""

from __future__ import annotations

import asyncpg

from events.types import RecordedEvent
from projections.customers import reference_of
from projections.registry import Projector

projector = Projector(name="subscriptions", tables=("availability_subscriptions",))


@projector.on("CustomerAnonymized")
async def _anonymized(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    await conn.execute(
        "DELETE FROM availability_subscriptions WHERE customer_reference = $1", reference_of(event)
    )
