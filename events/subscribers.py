"""Asynchronous subscribers: checkpointed catch-up, woken by commits, one leader each."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import asyncpg

from events.notify import Waker
from events.store import EventStore
from events.types import RecordedEvent

log = logging.getLogger(__name__)

Connect = Callable[[], Awaitable[asyncpg.Connection]]


class RetryLater(Exception):
    """A transient failure (mail server down): retry the event forever, with backoff."""


class Subscriber(Protocol):
    """A consumer of the global feed. `handle` must be idempotent: after a crash an
    event may be offered again."""

    name: str
    types: Sequence[str] | None

    async def handle(self, event: RecordedEvent) -> None: ...


@runtime_checkable
class Batching(Protocol):
    """A subscriber with work of its own per batch instead of per event.

    `prepare` sees a batch before its first event is handled (one lookup for all of
    them); `flush` runs before every checkpoint write (one write for all of them).
    Passes start at most once per `pass_interval` seconds: a lone event is handled at
    once, a steady stream in batches of what arrived meanwhile.
    """

    pass_interval: float

    async def prepare(self, events: Sequence[RecordedEvent]) -> None: ...

    async def flush(self) -> None: ...


@dataclass
class SubscriberStatus:
    """What the runtime knows of one subscriber (exported as metrics)."""

    leader: bool = False
    lock_attempts: int = 0
    handled: int = 0
    failures: int = 0
    skipped: int = 0
    last_cursor: tuple[int, int] = (0, 0)
    last_recorded_at: float | None = None
    lag_seconds: float = 0.0


@dataclass
class RuntimeOptions:
    """Timings of the runtime; tests shorten them."""

    poll_seconds: float = 2.0
    leader_retry_seconds: float = 2.0
    batch_size: int = 200
    max_attempts: int = 5
    backoff_base: float = 0.1
    backoff_cap: float = 30.0
    # Events still pending after a read that reached the end (held back by the fence)
    # are looked for again this soon, doubling up to the cap: the transaction holding
    # them back may end without waking anyone.
    pending_base: float = 0.005
    pending_cap: float = 0.25


class SubscriberRuntime:
    """Runs each subscriber in the one process that holds its advisory lock."""

    def __init__(
        self,
        store: EventStore,
        connect: Connect,
        waker: Waker,
        subscribers: Sequence[Subscriber],
        options: RuntimeOptions | None = None,
    ) -> None:
        self._store = store
        self._connect = connect
        self._waker = waker
        self._subscribers = list(subscribers)
        self._options = options or RuntimeOptions()
        self._tasks: list[asyncio.Task[None]] = []
        self.status: dict[str, SubscriberStatus] = {s.name: SubscriberStatus() for s in subscribers}
        self._idle: dict[str, asyncio.Event] = {s.name: asyncio.Event() for s in subscribers}
        # Bumped by wait_idle: only a pass that began after the bump may report idle, or
        # a pass already past its read (missing the caller's commits) would answer early.
        self._idle_asked: dict[str, int] = dict.fromkeys(self._idle, 0)
        self._watchers: set[asyncio.Event] = set()

    @property
    def subscribers(self) -> list[Subscriber]:
        """The subscribers this runtime runs (whether or not this process leads them)."""
        return list(self._subscribers)

    async def start(self) -> None:
        """Start one task per subscriber; each waits to become leader, then follows."""
        loop = asyncio.get_running_loop()
        for sub in self._subscribers:
            self._tasks.append(loop.create_task(self._lead(sub), name=f"subscriber:{sub.name}"))

    async def stop(self) -> None:
        """Stop every subscriber; their locks are released with their connections."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            # Cancel until it ends: a library's asyncio.wait_for (aiosmtplib, asyncpg) can
            # swallow a cancel that lands as its inner await completes (Python 3.11), and
            # the follower would then carry on forever.
            while not task.done():
                await asyncio.wait({task}, timeout=0.5)
                if not task.done():
                    task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def wait_idle(self, name: str, timeout: float = 10.0) -> None:
        """Wait until a subscriber has caught up with everything committed (for tests)."""
        self._idle_asked[name] += 1
        self._idle[name].clear()
        self._waker.wake_local()
        await asyncio.wait_for(self._idle[name].wait(), timeout)

    async def wait_until(
        self, name: str, predicate: Callable[[SubscriberStatus], bool], timeout: float = 10.0
    ) -> None:
        """Wait until a subscriber's status satisfies `predicate` (for tests)."""
        watcher = asyncio.Event()
        self._watchers.add(watcher)
        try:
            async with asyncio.timeout(timeout):
                while not predicate(self.status[name]):
                    await watcher.wait()
                    watcher.clear()
        finally:
            self._watchers.discard(watcher)

    def _changed(self) -> None:
        for watcher in self._watchers:
            watcher.set()

    async def _lead(self, sub: Subscriber) -> None:
        status = self.status[sub.name]
        conn: asyncpg.Connection | None = None
        try:
            while True:
                try:
                    # A contender keeps its connection between attempts; a leader's is
                    # closed when it stops leading, which is what releases the lock.
                    if conn is None or conn.is_closed():
                        conn = await self._connect()
                    got = await conn.fetchval(
                        "SELECT pg_try_advisory_lock(hashtext('glue-subscriber'), hashtext($1))",
                        sub.name,
                    )
                    status.lock_attempts += 1
                    status.leader = bool(got)
                    self._changed()
                    if got:
                        log.info("subscriber %s: leading", sub.name)
                        await self._follow(sub, conn)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("subscriber %s: %s; retrying", sub.name, exc)
                finally:
                    if status.leader:
                        status.leader = False
                        self._changed()
                        conn = await self._close(conn)
                await asyncio.sleep(self._options.leader_retry_seconds)
        finally:
            await self._close(conn)

    @staticmethod
    async def _close(conn: asyncpg.Connection | None) -> None:
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(conn.close(timeout=2))

    async def _follow(self, sub: Subscriber, lock_conn: asyncpg.Connection) -> None:
        status = self.status[sub.name]
        wake = self._waker.waiter(sub.types)
        # The checkpoint is read and written on the lock's own connection: a write
        # that succeeds proves this process still leads.
        progress = _Progress(
            sub.name,
            lock_conn,
            await self._checkpoint(lock_conn, sub.name),
            sub if isinstance(sub, Batching) else None,
        )
        interval = progress.batching.pass_interval if progress.batching else 0.0
        loop = asyncio.get_running_loop()
        recheck = 0.0  # > 0 while events are held back by the fence
        try:
            while not lock_conn.is_closed():
                wake.clear()
                asked = self._idle_asked[sub.name]
                started = loop.time()
                batch = await self._store.read_all(
                    after=progress.cursor, limit=self._options.batch_size, types=sub.types
                )
                if batch and progress.batching is not None:
                    await progress.batching.prepare(batch)
                for event in batch:
                    await self._deliver(sub, event, status, progress)
                    progress.cursor = (event.transaction_id, event.position)
                    status.last_cursor = progress.cursor
                    status.last_recorded_at = event.recorded_at.timestamp()
                    status.lag_seconds = max(0.0, time.time() - event.recorded_at.timestamp())
                # One checkpoint write per batch, not per event: after a crash at most
                # the rest of a batch is offered again (handlers are idempotent).
                await progress.save()
                if len(batch) == self._options.batch_size:
                    continue
                status.lag_seconds = 0.0
                if asked == self._idle_asked[sub.name]:
                    self._idle[sub.name].set()
                if await self._store.pending(progress.cursor, sub.types):
                    opts = self._options
                    recheck = min(opts.pending_cap, recheck * 2 or opts.pending_base)
                else:
                    recheck = 0.0
                # Not asyncio.wait_for: on 3.11 it swallows a cancel that lands as the
                # wake fires, and this loop would then never stop.
                try:
                    async with asyncio.timeout(recheck or self._options.poll_seconds):
                        await wake.wait()
                except TimeoutError:
                    if not recheck:
                        # Quiet for a while: prove the lock connection (and the lead) alive.
                        await lock_conn.fetchval("SELECT 1")
                if interval:
                    # What commits meanwhile joins the next batch.
                    await asyncio.sleep(max(0.0, started + interval - loop.time()))
        except BaseException:
            # Stopped or failed between checkpoints: record what was handled, so that
            # the next leader neither repeats it nor (CAS) moves the checkpoint back.
            with contextlib.suppress(Exception):
                await asyncio.shield(progress.save())
            raise
        finally:
            self._waker.forget(wake)

    async def _deliver(
        self,
        sub: Subscriber,
        event: RecordedEvent,
        status: SubscriberStatus,
        progress: _Progress,
    ) -> None:
        attempt = 0
        while True:
            try:
                await sub.handle(event)
                status.handled += 1
                self._changed()
                return
            except asyncio.CancelledError:
                raise
            except RetryLater as exc:
                attempt += 1
                status.failures += 1
                log.warning("subscriber %s: %s at %s, retrying", sub.name, exc, event.cursor)
            except Exception:
                attempt += 1
                status.failures += 1
                log.exception(
                    "subscriber %s failed on %s (attempt %d)", sub.name, event.cursor, attempt
                )
                if attempt >= self._options.max_attempts:
                    status.skipped += 1
                    self._changed()
                    log.error("subscriber %s: skipping poison event %s", sub.name, event.cursor)
                    return
            # A retry may wait long (RetryLater forever): keep what came before it.
            await progress.save()
            delay = min(self._options.backoff_cap, self._options.backoff_base * 2 ** (attempt - 1))
            await asyncio.sleep(delay)

    @staticmethod
    async def _checkpoint(conn: asyncpg.Connection, name: str) -> tuple[int, int]:
        await conn.execute(
            "INSERT INTO subscriber_checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING", name
        )
        row = await conn.fetchrow(
            "SELECT transaction_id, position FROM subscriber_checkpoints WHERE name = $1", name
        )
        return row["transaction_id"], row["position"]


@dataclass
class _Progress:
    """How far a leader got (`cursor`) and what its checkpoint row says (`saved`)."""

    name: str
    conn: asyncpg.Connection
    saved: tuple[int, int]
    batching: Batching | None = None
    cursor: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        self.cursor = self.saved

    async def save(self) -> None:
        """Flush the subscriber's batch work, then write the cursor to the checkpoint
        row, if it moved."""
        if self.batching is not None:
            await self.batching.flush()
        if self.cursor == self.saved:
            return
        # Compare-and-set: a deposed leader that wakes up late cannot move the
        # checkpoint its successor already owns.
        new = self.cursor
        done = await self.conn.fetchval(
            """UPDATE subscriber_checkpoints
               SET transaction_id = $2, position = $3, updated_at = now()
               WHERE name = $1 AND transaction_id = $4 AND position = $5
               RETURNING 1""",
            self.name,
            new[0],
            new[1],
            self.saved[0],
            self.saved[1],
        )
        if done is None:
            raise RuntimeError(f"checkpoint of {self.name} moved under us; giving up leadership")
        self.saved = new


@dataclass
class Subscription:
    """A subscriber made from a plain function (handy for tests and small consumers)."""

    name: str
    fn: Callable[[RecordedEvent], Awaitable[None]]
    types: Sequence[str] | None = field(default=None)

    async def handle(self, event: RecordedEvent) -> None:
        """Call the function."""
        await self.fn(event)
