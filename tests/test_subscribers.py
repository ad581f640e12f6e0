"""SubscriberRuntime and wake-ups: catch-up, NOTIFY, leadership, retries, poison events."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
import pytest

from events.crypto import KeyRing
from events.notify import CHANNEL, Listener, Waker
from events.store import EventStore
from events.subscribers import (
    Batching,
    RetryLater,
    RuntimeOptions,
    SubscriberRuntime,
    Subscription,
)
from events.types import NewEvent, RecordedEvent
from service import db
from tests.eventlog import Noted, registry, unique_stream

# Wake-ups must do the work: a poll this long would time every test out.
OPTIONS = RuntimeOptions(
    poll_seconds=3600,
    leader_retry_seconds=0.05,
    batch_size=4,
    max_attempts=3,
    backoff_base=0.001,
    backoff_cap=0.01,
)


@pytest.fixture
async def store(pool: asyncpg.Pool, keyring: KeyRing) -> AsyncIterator[EventStore]:
    """The writer's store; its commits wake followers of its waker."""
    s = EventStore(pool, registry, keyring, Waker(pool))
    yield s
    await s.waker.close()  # type: ignore[union-attr]


@dataclass
class Log:
    """What handlers did with the events of one stream, shared by every runtime."""

    stream: str
    handled: list[tuple[str, uuid.UUID]] = field(default_factory=list)

    def ids(self, by: str | None = None) -> list[uuid.UUID]:
        """Event ids handled (by one runtime, or by any), in order."""
        return [i for who, i in self.handled if by is None or who == by]

    def subscription(
        self,
        name: str,
        who: str,
        before: Callable[[RecordedEvent], Awaitable[None]] | None = None,
    ) -> Subscription:
        """A subscriber recording this stream's events once `before` (if any) returns."""

        async def handle(event: RecordedEvent) -> None:
            if event.stream_id != self.stream:
                return
            if before is not None:
                await before(event)
            self.handled.append((who, event.event_id))

        return Subscription(name, handle)


@pytest.fixture
async def runtimes(database: str) -> AsyncIterator[Callable[..., SubscriberRuntime]]:
    """Builds started-later runtimes (one per simulated process); stops them all at the end."""
    made: list[SubscriberRuntime] = []

    def make(
        store: EventStore, *subs: Subscription, options: RuntimeOptions = OPTIONS
    ) -> SubscriberRuntime:
        assert store.waker is not None
        runtime = SubscriberRuntime(store, lambda: db.connect(database), store.waker, subs, options)
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        await runtime.stop()


async def append(store: EventStore, stream: str, count: int) -> list[uuid.UUID]:
    """Append `count` events one by one; returns their ids."""
    version = await store.stream_version(stream)
    ids = []
    for i in range(count):
        [event] = await store.append(stream, [NewEvent(Noted("e", i))], version + i)
        ids.append(event.event_id)
    return ids


def arrival(stream: str) -> tuple[asyncio.Event, Callable[[RecordedEvent], Awaitable[None]]]:
    """An event set once a handler sees anything of `stream`, and that handler."""
    arrived = asyncio.Event()

    async def handle(event: RecordedEvent) -> None:
        if event.stream_id == stream:
            arrived.set()

    return arrived, handle


def leading(status: object) -> bool:
    return bool(getattr(status, "leader", False))


# ------------------------------------------------------------------ catch-up and wake-ups


async def test_a_subscriber_catches_up_and_resumes_from_its_checkpoint(
    store: EventStore, runtimes: Callable[..., SubscriberRuntime]
) -> None:
    log, name = Log(unique_stream()), f"sub-{uuid.uuid4().hex[:8]}"
    before_start = await append(store, log.stream, 6)
    first = runtimes(store, log.subscription(name, "first"))
    await first.start()
    await first.wait_idle(name)
    await first.stop()
    while_stopped = await append(store, log.stream, 5)
    second = runtimes(store, log.subscription(name, "second"))
    await second.start()
    await second.wait_idle(name)
    assert log.ids("first") == before_start
    assert log.ids("second") == while_stopped


async def test_a_commit_wakes_a_follower_without_waiting_for_the_poll(
    store: EventStore, runtimes: Callable[..., SubscriberRuntime]
) -> None:
    stream, name = unique_stream(), f"sub-{uuid.uuid4().hex[:8]}"
    arrived, handle = arrival(stream)

    runtime = runtimes(store, Subscription(name, handle))
    await runtime.start()
    await runtime.wait_idle(name)  # now it waits: for a wake-up, or an hour
    await append(store, stream, 1)
    await asyncio.wait_for(arrived.wait(), 10)


async def test_an_event_held_back_by_an_older_transaction_arrives_when_it_ends_unannounced(
    store: EventStore, database: str, runtimes: Callable[..., SubscriberRuntime]
) -> None:
    # The follower is woken for the event but the fence hides it: an older transaction
    # still runs. That one then commits without waking anybody (it appended no event);
    # the poll is an hour away, so only looking again on its own brings the event.
    stream, name = unique_stream(), f"sub-{uuid.uuid4().hex[:8]}"
    arrived, handle = arrival(stream)

    runtime = runtimes(store, Subscription(name, handle, [Noted.type_name]))
    await runtime.start()
    await runtime.wait_idle(name)
    older = await db.connect(database)
    try:
        await older.execute("BEGIN")
        await older.fetchval("SELECT pg_current_xact_id()")  # takes its transaction id now
        await append(store, stream, 1)
        await runtime.wait_idle(name)  # it has looked, and found the event held back
        assert not arrived.is_set()
        assert await store.pending(None, [Noted.type_name])
        await older.execute("COMMIT")
        await asyncio.wait_for(arrived.wait(), 10)
    finally:
        await older.close()


async def test_a_commit_in_another_process_wakes_a_follower_through_notify(
    store: EventStore,
    database: str,
    keyring: KeyRing,
    runtimes: Callable[..., SubscriberRuntime],
) -> None:
    stream, name = unique_stream(), f"sub-{uuid.uuid4().hex[:8]}"
    arrived, handle = arrival(stream)

    far_pool = await db.create_pool(database, min_size=1, max_size=2)
    far_waker = Waker(None)  # wakes only its own process: NOTIFY must carry the news
    listener = Listener(database, far_waker)
    try:
        await listener.start()
        await listener.wait_connected()
        far = runtimes(
            EventStore(far_pool, registry, keyring, far_waker), Subscription(name, handle)
        )
        await far.start()
        await far.wait_idle(name)
        await append(store, stream, 1)
        await asyncio.wait_for(arrived.wait(), 10)
        await far.stop()
    finally:
        await listener.stop()
        await far_pool.close()


# ------------------------------------------------------------------ leadership


async def test_of_two_runtimes_only_the_one_holding_the_lock_handles_events(
    store: EventStore, runtimes: Callable[..., SubscriberRuntime]
) -> None:
    log, name = Log(unique_stream()), f"sub-{uuid.uuid4().hex[:8]}"
    a = runtimes(store, log.subscription(name, "a"))
    b = runtimes(store, log.subscription(name, "b"))
    await a.start()
    await a.wait_until(name, leading)
    await b.start()
    ids = await append(store, log.stream, 10)
    await a.wait_idle(name)
    # b kept trying while there was work, and never got the lock.
    await b.wait_until(name, lambda s: s.lock_attempts >= 3)
    assert not b.status[name].leader
    assert log.ids("a") == ids
    assert log.ids("b") == []


async def test_when_the_leader_stops_mid_batch_the_other_continues_from_its_checkpoint(
    store: EventStore, runtimes: Callable[..., SubscriberRuntime]
) -> None:
    log, name = Log(unique_stream()), f"sub-{uuid.uuid4().hex[:8]}"
    stuck = asyncio.Event()
    never = asyncio.Event()
    seen_by_a = 0

    async def a_gets_stuck_on_the_third(event: RecordedEvent) -> None:
        nonlocal seen_by_a
        seen_by_a += 1
        if seen_by_a == 3:
            stuck.set()
            await never.wait()  # cancelled by stop(): this event is not handled by a

    a = runtimes(store, log.subscription(name, "a", before=a_gets_stuck_on_the_third))
    b = runtimes(store, log.subscription(name, "b"))
    await a.start()
    await a.wait_until(name, leading)
    await b.start()
    ids = await append(store, log.stream, 4)  # one batch (batch_size=4)
    await asyncio.wait_for(stuck.wait(), 10)
    await a.stop()
    await b.wait_until(name, leading)
    ids += await append(store, log.stream, 3)
    await b.wait_idle(name)
    assert log.ids("a") == ids[:2]
    assert log.ids("b") == ids[2:]
    assert log.ids() == ids  # none twice, none missed


async def test_when_the_leaders_connection_dies_the_other_takes_over(
    store: EventStore, runtimes: Callable[..., SubscriberRuntime], conn: asyncpg.Connection
) -> None:
    log, name = Log(unique_stream()), f"sub-{uuid.uuid4().hex[:8]}"
    a = runtimes(store, log.subscription(name, "a"))
    b = runtimes(store, log.subscription(name, "b"))
    await a.start()
    await a.wait_until(name, leading)
    await b.start()
    ids = await append(store, log.stream, 3)
    await a.wait_idle(name)
    # The process "dies": the server ends the session holding the advisory lock.
    killed = await conn.fetchval(
        """SELECT pg_terminate_backend(pid) FROM pg_locks
           WHERE locktype = 'advisory' AND granted
             AND classid = hashtext('glue-subscriber')::oid AND objid = hashtext($1)::oid""",
        name,
    )
    assert killed
    await b.wait_until(name, leading)
    ids += await append(store, log.stream, 3)
    await b.wait_idle(name)
    assert log.ids("a") == ids[:3]
    assert log.ids("b") == ids[3:]


# ------------------------------------------------------------------ failures


async def test_a_poison_event_is_skipped_after_max_attempts_and_the_subscriber_goes_on(
    store: EventStore, runtimes: Callable[..., SubscriberRuntime]
) -> None:
    stream, name = unique_stream(), f"sub-{uuid.uuid4().hex[:8]}"
    attempts: dict[int, int] = {}
    handled: list[int] = []

    async def handle(event: RecordedEvent) -> None:
        if event.stream_id != stream:
            return
        attempts[event.version] = attempts.get(event.version, 0) + 1
        if event.version == 2:
            raise ValueError("poison")
        handled.append(event.version)

    runtime = runtimes(store, Subscription(name, handle))
    await runtime.start()
    await append(store, stream, 3)
    await runtime.wait_idle(name)
    assert attempts == {1: 1, 2: OPTIONS.max_attempts, 3: 1}
    assert handled == [1, 3]
    assert runtime.status[name].skipped == 1


async def test_retry_later_is_retried_past_max_attempts_until_the_handler_succeeds(
    store: EventStore, runtimes: Callable[..., SubscriberRuntime]
) -> None:
    stream, name = unique_stream(), f"sub-{uuid.uuid4().hex[:8]}"
    tries = 0
    handled: list[int] = []

    async def handle(event: RecordedEvent) -> None:
        nonlocal tries
        if event.stream_id != stream:
            return
        tries += 1
        if tries <= OPTIONS.max_attempts + 2:
            raise RetryLater("mail server down")
        handled.append(event.version)

    runtime = runtimes(store, Subscription(name, handle))
    await runtime.start()
    await append(store, stream, 1)
    await runtime.wait_idle(name)
    assert handled == [1]
    assert tries == OPTIONS.max_attempts + 3
    assert runtime.status[name].skipped == 0


# ------------------------------------------------------------------ batching subscribers


@dataclass
class BatchLog:
    """A Batching subscriber noting, for one stream, each prepare, handle and flush."""

    name: str
    stream: str
    pool: asyncpg.Pool
    pass_interval: float = 0.0
    types: tuple[str, ...] | None = None
    steps: list[tuple[str, list[int]]] = field(default_factory=list)
    # At each flush: the cursors still unflushed, and the checkpoint as it stood then.
    flushes: list[tuple[list[tuple[int, int]], tuple[int, int]]] = field(default_factory=list)
    _unflushed: list[tuple[int, int]] = field(default_factory=list)

    async def prepare(self, events: list[RecordedEvent]) -> None:
        self.steps.append(("prepare", [e.version for e in events if e.stream_id == self.stream]))

    async def handle(self, event: RecordedEvent) -> None:
        if event.stream_id == self.stream:
            self.steps.append(("handle", [event.version]))
            self._unflushed.append((event.transaction_id, event.position))

    async def flush(self) -> None:
        row = await self.pool.fetchrow(
            "SELECT transaction_id, position FROM subscriber_checkpoints WHERE name = $1",
            self.name,
        )
        self.flushes.append((self._unflushed, (row[0], row[1])))
        self._unflushed = []

    def handled(self) -> list[int]:
        return [step[1][0] for step in self.steps if step[0] == "handle"]

    def prepared(self) -> list[list[int]]:
        return [versions for what, versions in self.steps if what == "prepare" and versions]


async def test_a_batching_subscriber_sees_each_batch_before_handling_its_events(
    store: EventStore, pool: asyncpg.Pool, runtimes: Callable[..., SubscriberRuntime]
) -> None:
    sub = BatchLog(f"sub-{uuid.uuid4().hex[:8]}", unique_stream(), pool)
    assert isinstance(sub, Batching)
    await append(store, sub.stream, 6)
    runtime = runtimes(store, sub)
    await runtime.start()
    await runtime.wait_idle(sub.name)
    assert sub.handled() == [1, 2, 3, 4, 5, 6]
    announced: list[int] = []
    for what, versions in sub.steps:
        if what == "prepare":
            announced = versions
        else:
            assert versions[0] in announced


async def test_a_batching_subscriber_flushes_its_events_before_the_checkpoint_passes_them(
    store: EventStore, pool: asyncpg.Pool, runtimes: Callable[..., SubscriberRuntime]
) -> None:
    sub = BatchLog(f"sub-{uuid.uuid4().hex[:8]}", unique_stream(), pool)
    await append(store, sub.stream, 6)
    runtime = runtimes(store, sub)
    await runtime.start()
    await runtime.wait_idle(sub.name)
    flushed = [cursor for unflushed, _ in sub.flushes for cursor in unflushed]
    assert len(flushed) == 6
    for unflushed, checkpoint in sub.flushes:
        assert all(checkpoint < cursor for cursor in unflushed)


async def test_a_lone_event_goes_at_once_and_a_stream_after_it_in_batches_per_interval(
    store: EventStore, pool: asyncpg.Pool, runtimes: Callable[..., SubscriberRuntime]
) -> None:
    sub = BatchLog(f"sub-{uuid.uuid4().hex[:8]}", unique_stream(), pool, pass_interval=0.5)
    runtime = runtimes(store, sub)
    await runtime.start()
    await runtime.wait_idle(sub.name)
    await append(store, sub.stream, 1)
    await runtime.wait_until(sub.name, lambda _: sub.handled() == [1])
    # Committed within the interval that began with the lone event's pass.
    await append(store, sub.stream, 4)
    await runtime.wait_until(sub.name, lambda _: len(sub.handled()) == 5)
    assert sub.prepared() == [[1], [2, 3, 4, 5]]


# ------------------------------------------------------------------ waker and listener


async def test_many_pokes_while_a_notify_is_in_flight_send_at_most_two(
    pool: asyncpg.Pool, database: str, conn: asyncpg.Connection
) -> None:
    received: list[str] = []
    end = asyncio.Event()

    def on_notify(_c: object, _pid: int, _channel: str, payload: str) -> None:
        received.append(payload)
        if payload == "end":
            end.set()

    listening = await db.connect(database)
    try:
        await listening.add_listener(CHANNEL, on_notify)
        waker = Waker(pool)
        for _ in range(100):
            waker.poke()  # all before the first NOTIFY can even be sent
        await waker.close()
        # Notifications arrive in commit order: once "end" is here, so are the others.
        await conn.execute(f"NOTIFY {CHANNEL}, 'end'")
        await asyncio.wait_for(end.wait(), 10)
    finally:
        await listening.close()
    sent = [p for p in received if p != "end"]
    assert 1 <= len(sent) <= 2


async def test_every_poke_wakes_followers_in_this_process_at_once() -> None:
    waker = Waker(None)
    follower = waker.waiter()
    waker.poke()
    assert follower.is_set()
    follower.clear()
    waker.forget(follower)
    waker.poke()
    assert not follower.is_set()


async def test_a_listener_is_woken_by_a_commit_from_another_pool(
    store: EventStore, database: str
) -> None:
    here = Waker(None)
    listener = Listener(database, here)
    await listener.start()
    try:
        await listener.wait_connected()
        woken = here.waiter()
        woken.clear()  # the listener wakes everyone once when it connects
        await append(store, unique_stream(), 1)  # through the other pool and its Waker
        await asyncio.wait_for(woken.wait(), 10)
    finally:
        await listener.stop()
