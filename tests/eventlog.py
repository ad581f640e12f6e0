"""Test-only event types and helpers for tests of the event store itself."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
from asyncpg.transaction import Transaction

from events.types import Event, EventRegistry

registry = EventRegistry()


@registry.register
@dataclass(frozen=True)
class Noted(Event):
    """An event without personal data."""

    type_name = "TestNoted"

    text: str
    n: int = 0


@registry.register
@dataclass(frozen=True)
class Contacted(Event):
    """An event with personal fields next to an ordinary one."""

    type_name = "TestContacted"
    personal = frozenset({"email", "name"})

    sku: str
    email: str | None = None
    name: str | None = None


def unique_stream(prefix: str = "test") -> str:
    """A stream id no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def wait_until_blocked_by(
    observer: asyncpg.Connection, holder: asyncpg.Connection, timeout: float = 10.0
) -> None:
    """Wait until some backend waits for a lock held by `holder`'s transaction.

    A lock wait is only observable from the server, so this polls pg_stat_activity:
    it waits for that state, not for an amount of time.
    """
    async with asyncio.timeout(timeout):
        while not await observer.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid)))",
            holder.get_server_pid(),
        ):
            await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def held_transaction(
    pool: asyncpg.Pool,
) -> AsyncIterator[tuple[asyncpg.Connection, Transaction]]:
    """A pooled connection in a transaction the test commits or rolls back itself
    (rolled back on the way out if the test did neither, e.g. because it failed)."""
    conn = await pool.acquire()
    tx = conn.transaction()
    await tx.start()
    try:
        yield conn, tx
    finally:
        if conn.is_in_transaction():
            await tx.rollback()
        await pool.release(conn)
