"""The global feed (read_all): never skips a committed event, never reorders what it returned."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import uuid
from dataclasses import dataclass, field

import asyncpg
import pytest

from events.crypto import KeyRing
from events.notify import Waker
from events.store import ConcurrencyError, EventStore
from events.types import NewEvent, RecordedEvent
from tests.eventlog import Noted, held_transaction, registry, unique_stream

Cursor = tuple[int, int]


@pytest.fixture
def store(pool: asyncpg.Pool) -> EventStore:
    """A store whose commits wake followers in this process."""
    return EventStore(pool, registry, KeyRing(os.urandom(32)), Waker(None))


@dataclass
class Follower:
    """Follows read_all from a cursor, as a subscriber does, keeping what it saw."""

    store: EventStore
    cursor: Cursor
    seen: list[RecordedEvent] = field(default_factory=list)

    async def poll(self, limit: int = 500) -> list[RecordedEvent]:
        """Read one page after the cursor and move the cursor past it."""
        page = await self.store.read_all(after=self.cursor, limit=limit)
        if page:
            self.cursor = (page[-1].transaction_id, page[-1].position)
        self.seen.extend(page)
        return page

    async def drain(self) -> None:
        """Poll until a page comes back empty."""
        while await self.poll():
            pass

    def of(self, streams: set[str]) -> list[uuid.UUID]:
        """Event ids seen in some streams, in the order seen."""
        return [e.event_id for e in self.seen if e.stream_id in streams]


async def head(store: EventStore) -> Cursor:
    """The cursor after everything committed so far."""
    follower = Follower(store, (0, 0))
    while page := await store.read_all(after=follower.cursor, limit=10_000):
        follower.cursor = (page[-1].transaction_id, page[-1].position)
    return follower.cursor


# ------------------------------------------------------------------ interleavings


@pytest.mark.parametrize(
    "slow_appends_first",
    [True, False],
    ids=["slow-appends-first", "slow-only-takes-its-xid-first"],
)
async def test_a_slow_writer_that_commits_last_is_neither_skipped_nor_seen_early(
    store: EventStore, pool: asyncpg.Pool, slow_appends_first: bool
) -> None:
    slow_stream, fast_stream = unique_stream("slow"), unique_stream("fast")
    streams = {slow_stream, fast_stream}
    follower = Follower(store, await head(store))
    async with held_transaction(pool) as (slow_conn, slow_tx):
        if slow_appends_first:
            # The slow writer gets the lower position and the lower transaction id.
            [slow] = await store.append(slow_stream, [NewEvent(Noted("slow"))], 0, conn=slow_conn)
        else:
            # The slow writer has the lower transaction id but appends after the fast
            # one: its position is higher, yet it comes first in the feed.
            await slow_conn.fetchval("SELECT pg_current_xact_id()")
        [fast] = await store.append(fast_stream, [NewEvent(Noted("fast"))], 0)
        await follower.drain()
        assert follower.of(streams) == []  # the fast one would hide the slow one's slot
        if not slow_appends_first:
            [slow] = await store.append(slow_stream, [NewEvent(Noted("slow"))], 0, conn=slow_conn)
            await follower.drain()
            assert follower.of(streams) == []
        await slow_tx.commit()
    await follower.drain()
    assert follower.of(streams) == [slow.event_id, fast.event_id]
    assert (slow.position < fast.position) is slow_appends_first


async def test_without_the_fence_that_interleaving_skips_the_slow_writer(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    """Shows the scenario above is a real hazard, so its test can fail."""
    slow_stream, fast_stream = unique_stream("slow"), unique_stream("fast")
    cursor = await head(store)
    async with held_transaction(pool) as (slow_conn, slow_tx):
        [slow] = await store.append(slow_stream, [NewEvent(Noted("slow"))], 0, conn=slow_conn)
        [fast] = await store.append(fast_stream, [NewEvent(Noted("fast"))], 0)
        early = await store.read_all(after=cursor, stream_id=fast_stream, fenced=False)
        assert [e.event_id for e in early] == [fast.event_id]
        await slow_tx.commit()
    after_fast = (fast.transaction_id, fast.position)
    assert await store.read_all(after=after_fast, stream_id=slow_stream) == []
    assert (slow.transaction_id, slow.position) < after_fast


async def test_an_append_whose_transaction_id_predates_the_stream_head_is_refused(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    """The feed orders by transaction id; a stream must still read in version order there."""
    stream = unique_stream()
    follower = Follower(store, await head(store))
    async with held_transaction(pool) as (early_conn, _):
        # This transaction wrote before version 1 existed: its id is the lower one.
        await early_conn.fetchval("SELECT pg_current_xact_id()")
        [first] = await store.append(stream, [NewEvent(Noted("first"))], 0)
        with pytest.raises(ConcurrencyError):
            await store.append(stream, [NewEvent(Noted("second"))], 1, conn=early_conn)
    [second] = await store.append(stream, [NewEvent(Noted("second"))], 1)  # the retry
    await follower.drain()
    assert follower.of({stream}) == [first.event_id, second.event_id]


async def test_a_rolled_back_append_leaves_no_trace_in_the_feed(
    store: EventStore, pool: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    stream = unique_stream()
    follower = Follower(store, await head(store))
    async with held_transaction(pool) as (doomed_conn, doomed_tx):
        [doomed] = await store.append(stream, [NewEvent(Noted("doomed"))], 0, conn=doomed_conn)
        await doomed_tx.rollback()
    [kept] = await store.append(stream, [NewEvent(Noted("kept"))], 0)
    await follower.drain()
    assert follower.of({stream}) == [kept.event_id]
    assert kept.version == 1
    assert not await conn.fetchval(
        "SELECT count(*) FROM events WHERE event_id = $1", doomed.event_id
    )


# ------------------------------------------------------------------ soak

WRITERS = 8
READERS = 2
TARGET_EVENTS = 20_000
ROLLBACK_SHARE = 0.05


class _Abandon(Exception):
    """Raised inside a writer's transaction to roll it back."""


async def test_soak_tailing_readers_see_every_committed_event_once_in_one_order(
    store: EventStore,
) -> None:
    assert store.waker is not None
    tag = uuid.uuid4().hex[:8]
    start = await head(store)
    committed: list[uuid.UUID] = []
    abandoned: list[uuid.UUID] = []
    writers_done = asyncio.Event()
    rng = random.Random(2)

    async def writer(w: int) -> None:
        streams = {f"soak-{tag}-{w}-{s}": 0 for s in range(3)}
        written = 0
        while written < TARGET_EVENTS // WRITERS:
            stream = rng.choice(list(streams))
            batch = [NewEvent(Noted("soak", n)) for n in range(rng.randint(1, 19))]
            try:
                async with store.transaction() as conn:
                    await store.append(stream, batch, streams[stream], conn=conn)
                    # Hold the transaction open a little, so commits land out of order.
                    await asyncio.sleep(rng.random() * 0.001)
                    if rng.random() < ROLLBACK_SHARE:
                        raise _Abandon
            except _Abandon:
                abandoned.extend(e.event_id for e in batch)
                continue
            streams[stream] += len(batch)
            written += len(batch)
            committed.extend(e.event_id for e in batch)

    def mine(page: list[RecordedEvent]) -> list[uuid.UUID]:
        return [e.event_id for e in page if e.stream_id.startswith(f"soak-{tag}")]

    async def reader() -> list[uuid.UUID]:
        follower = Follower(store, start)
        wake = store.waker.waiter()  # type: ignore[union-attr]
        seen: list[uuid.UUID] = []
        try:
            async with asyncio.timeout(60):
                while not (writers_done.is_set() and len(seen) >= len(committed)):
                    wake.clear()
                    page = await follower.poll()
                    seen.extend(mine(page))
                    if not page:
                        # Woken by the next commit; the bounded wait only covers a commit
                        # whose fence lifts when an unrelated transaction ends.
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(0.05):
                                await wake.wait()
            # Anything more now would be a duplicate or a rolled-back event.
            while page := await follower.poll():
                seen.extend(mine(page))
        finally:
            store.waker.forget(wake)  # type: ignore[union-attr]
        return seen

    readers = [asyncio.create_task(reader()) for _ in range(READERS)]
    await asyncio.gather(*(writer(w) for w in range(WRITERS)))
    writers_done.set()
    store.wake()
    orders = await asyncio.gather(*readers)

    assert len(committed) >= TARGET_EVENTS
    assert abandoned, "some transactions should have rolled back"
    for order in orders:
        assert len(order) == len(set(order)), "an event was seen twice"
        assert set(order) == set(committed)
    assert orders[0] == orders[1]
    final = Follower(store, start)
    await final.drain()
    assert [e.event_id for e in final.seen if e.stream_id.startswith(f"soak-{tag}")] == orders[0]
