"""Wake-ups after commit are typed: a follower wakes for the event types it reads."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import pytest

from events.crypto import KeyRing
from events.notify import CHANNEL, HELLO, Listener, Waker
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


# ------------------------------------------------------------------ presence

PRESENCE = 0.1  # seconds between hellos in these tests


class Overhearing:
    """A bare LISTEN connection noting every payload on the channel (not a process of
    ours: it never says hello)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.payloads: list[str] = []
        self._marker = asyncio.Event()

    def _heard(self, conn: object, pid: int, channel: str, payload: str) -> None:
        self.payloads.append(payload)
        if payload == "overhearing|marker":
            self._marker.set()

    async def start(self) -> None:
        await self.conn.add_listener(CHANNEL, self._heard)

    async def all_sent_so_far(self) -> list[str]:
        """Every payload committed before this call (a marker sent now comes after them)."""
        self._marker.clear()
        await self.conn.execute("SELECT pg_notify($1, 'overhearing|marker')", CHANNEL)
        async with asyncio.timeout(10):
            await self._marker.wait()
        return [p for p in self.payloads if p != "overhearing|marker"]


@pytest.fixture
async def overhearing(database: str) -> AsyncIterator[Overhearing]:
    conn = await db.connect(database)
    o = Overhearing(conn)
    await o.start()
    yield o
    await conn.close()


@dataclass
class Process:
    """Another process's pool, waker and listener on the test database."""

    pool: asyncpg.Pool
    waker: Waker
    listener: Listener
    stopped: bool = False

    async def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            await self.listener.stop()
            await self.pool.close()


@pytest.fixture
async def processes(database: str) -> AsyncIterator[Callable[[], Awaitable[Process]]]:
    """Starts processes whose listeners are trusted to know who else listens (one
    presence period after connecting); stops them all at the end."""
    made: list[Process] = []

    async def start() -> Process:
        pool = await db.create_pool(database, min_size=1, max_size=2)
        waker = Waker(pool, presence_seconds=PRESENCE)
        process = Process(pool, waker, Listener(database, waker))
        made.append(process)
        await process.listener.start()
        async with asyncio.timeout(10):
            while not waker.listening:
                await asyncio.sleep(PRESENCE / 4)
        return process

    yield start
    for process in made:
        await process.stop()


async def commit_one(pool: asyncpg.Pool, waker: Waker) -> None:
    store = EventStore(pool, registry, KeyRing(os.urandom(32)), waker)
    await store.append(unique_stream(), [NewEvent(Noted(text="p"))], 0)
    await waker.close()  # its NOTIFY, if any, is out


async def test_a_process_that_hears_no_other_listener_sends_no_notify(
    processes: Callable[[], Awaitable[Process]], overhearing: Overhearing
) -> None:
    alone = await processes()
    await commit_one(alone.pool, alone.waker)
    heard = await overhearing.all_sent_so_far()
    assert heard and all(p == f"{alone.waker.origin}|{HELLO}" for p in heard)


async def test_a_process_notifies_its_commits_while_another_one_listens(
    processes: Callable[[], Awaitable[Process]], overhearing: Overhearing
) -> None:
    first = await processes()
    await processes()
    await commit_one(first.pool, first.waker)
    assert f"{first.waker.origin}|TestNoted" in await overhearing.all_sent_so_far()


async def test_a_newcomers_hello_is_answered_with_a_notify_for_every_type(
    processes: Callable[[], Awaitable[Process]], overhearing: Overhearing
) -> None:
    first = await processes()
    await processes()
    await first.waker.close()
    assert f"{first.waker.origin}|*" in await overhearing.all_sent_so_far()


async def test_a_process_goes_silent_once_the_others_stopped_saying_hello(
    processes: Callable[[], Awaitable[Process]], overhearing: Overhearing
) -> None:
    first = await processes()
    await (await processes()).stop()
    async with asyncio.timeout(10):
        while first.waker.heard_from_others():
            await asyncio.sleep(PRESENCE)
    overhearing.payloads.clear()
    await commit_one(first.pool, first.waker)
    assert f"{first.waker.origin}|TestNoted" not in await overhearing.all_sent_so_far()


async def test_commits_announced_by_a_process_that_does_not_listen_do_not_count_as_listening(
    processes: Callable[[], Awaitable[Process]], pool: asyncpg.Pool, overhearing: Overhearing
) -> None:
    alone = await processes()
    await commit_one(pool, Waker(pool))  # a NOTIFY from a process with no listener
    await overhearing.all_sent_so_far()  # ...which `alone` has heard by now, too
    await commit_one(alone.pool, alone.waker)
    assert f"{alone.waker.origin}|TestNoted" not in await overhearing.all_sent_so_far()


async def test_a_waker_without_a_connected_listener_always_notifies(
    database: str, pool: asyncpg.Pool, overhearing: Overhearing
) -> None:
    waker = Waker(pool, presence_seconds=PRESENCE)  # no Listener: it cannot know
    await commit_one(pool, waker)
    assert f"{waker.origin}|TestNoted" in await overhearing.all_sent_so_far()
