"""Wake-ups after commit are typed: a follower wakes for the event types it reads."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import asyncpg
import pytest

from events.crypto import KeyRing
from events.notify import Listener, Waker
from events.store import EventStore
from events.types import NewEvent
from service import db
from tests.eventlog import Contacted, Noted, registry, unique_stream


@pytest.fixture
async def store(pool: asyncpg.Pool) -> AsyncIterator[EventStore]:
    """A store whose commits wake followers of its waker."""
    s = EventStore(pool, registry, KeyRing(os.urandom(32)), Waker(pool))
    yield s
    await s.waker.close()  # type: ignore[union-attr]


async def test_a_follower_wakes_only_for_the_types_it_reads(store: EventStore) -> None:
    waker = store.waker
    assert waker is not None
    noted, contacted, everything = (
        waker.waiter(["TestNoted"]),
        waker.waiter(["TestContacted"]),
        waker.waiter(),
    )
    await store.append(unique_stream(), [NewEvent(Noted(text="a"))], 0)
    assert (noted.is_set(), contacted.is_set(), everything.is_set()) == (True, False, True)


async def test_a_transaction_that_appended_nothing_wakes_nobody(store: EventStore) -> None:
    follower = store.waker.waiter()  # type: ignore[union-attr]
    async with store.transaction() as conn:
        await conn.fetchval("SELECT 1")
    assert not follower.is_set()


async def test_a_transaction_wakes_the_types_it_appended_after_commit(
    store: EventStore,
) -> None:
    waker = store.waker
    assert waker is not None
    noted, contacted = waker.waiter(["TestNoted"]), waker.waiter(["TestContacted"])
    async with store.transaction() as conn:
        await store.append(unique_stream(), [NewEvent(Contacted(sku="x"))], 0, {}, conn)
        assert not contacted.is_set()  # not before the commit
    assert (noted.is_set(), contacted.is_set()) == (False, True)


async def test_another_process_wakes_only_followers_of_the_types_it_committed(
    database: str, store: EventStore
) -> None:
    # A second "process": its own pool, waker and listener on the same database.
    other_pool = await db.create_pool(database, min_size=1, max_size=2)
    other = Waker(other_pool)
    listener = Listener(database, other)
    await listener.start()
    try:
        await listener.wait_connected()
        noted, contacted = other.waiter(["TestNoted"]), other.waiter(["TestContacted"])
        await store.append(unique_stream(), [NewEvent(Contacted(sku="y"))], 0)
        async with asyncio.timeout(10):
            await contacted.wait()
        assert not noted.is_set()
    finally:
        await listener.stop()
        await other_pool.close()


async def test_a_process_is_not_woken_again_by_its_own_notify(
    database: str, store: EventStore
) -> None:
    waker = store.waker
    assert waker is not None
    listener = Listener(database, waker)
    await listener.start()
    try:
        await listener.wait_connected()
        follower = waker.waiter(["TestNoted"])
        await store.append(unique_stream(), [NewEvent(Noted(text="b"))], 0)
        assert follower.is_set()  # woken in-process at commit
        follower.clear()
        await waker.close()  # our own NOTIFY is committed...
        # ...so a later marker from another origin arrives after it: once the marker
        # is heard, our own NOTIFY was heard too, and must not have woken anyone.
        marker = waker.waiter(["Marker"])
        async with store.pool.acquire() as conn:
            await conn.execute("SELECT pg_notify('glue_events', 'elsewhere|Marker')")
        async with asyncio.timeout(10):
            await marker.wait()
        assert not follower.is_set()
    finally:
        await listener.stop()
