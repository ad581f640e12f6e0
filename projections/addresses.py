"""The address-book read model."""

from __future__ import annotations

import asyncpg

from events.types import RecordedEvent
from projections.customers import reference_of
from projections.registry import Projector

projector = Projector(name="addresses", tables=("addresses",))


@projector.on("CustomerAnonymized")
async def _anonymized(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    await conn.execute("DELETE FROM addresses WHERE customer_reference = $1", reference_of(event))
