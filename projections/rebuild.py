"""Replay and verify: rebuild every read model from the log in a scratch schema.

`verify` reads the log in gap-free order and in batches and projects it with
the very handlers the append path runs inline (through a BatchedConnection),
then compares the scratch tables with the live ones in one snapshot. `replay`
loads the bulk of the log through the projectors' mirrors (projections/bulk.py),
carries on with the handlers from where that stopped, and swaps the new tables
in (blue/green: the service keeps serving; writes that land meanwhile are caught
up under a short lock; the swap is atomic). Memory stays flat in the log size.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import asyncpg

from events.store import EventStore
from events.types import RecordedEvent
from projections import bulk, scratch
from projections.batching import BatchedConnection
from projections.mirrors import MIRRORS, Mirror
from projections.registry import ProjectionSet
from projections.scratch import TableDifferences, ident, qualified

Connect = Callable[[], Awaitable[asyncpg.Connection]]
Progress = Callable[[str, int, int], None]  # phase, events done, events in the log
Cursor = tuple[int, int]

SCRATCH = "glue_rebuild"
RETIRED = "glue_retired"
_LOCK = "glue-customers-rebuild"
_SWAP_ATTEMPTS = 5


class RebuildBusy(Exception):
    """Another replay or verify holds the rebuild lock."""


@dataclass
class _Session:
    writer: asyncpg.Connection  # owns the scratch schema; search_path puts it first
    reader: asyncpg.Connection  # reads the log while the writer projects
    live: str  # the schema the service's tables live in
    batched: BatchedConnection
    cursor: Cursor = (0, 0)
    done: int = 0
    total: int = 0


@dataclass
class Rebuild:
    """Rebuilds `projections` from the log of `store`."""

    store: EventStore
    projections: ProjectionSet
    connect: Connect
    batch_size: int = 5000
    progress: Progress | None = None
    schema: str = SCRATCH
    # Replay folds the log through these when each projector has a current one
    # (projections/bulk.py); verify always runs the handlers themselves.
    mirrors: dict[str, Mirror] = field(default_factory=lambda: dict(MIRRORS))
    # Set by replay: projectors whose mirror is missing or stale (handler path taken).
    stale: list[str] = field(default_factory=list)
    # Worker processes for the bulk path (None: all in this process).
    parallel: bulk.Parallel | None = None

    async def replay(self) -> int:
        """Rebuild every read model and swap the new tables in; returns events projected."""
        async with self._session() as s:
            self.stale = bulk.stale(self.mirrors, self.projections.projectors)
            if not self.stale:
                await self._bulk(s)
            await self._build(s)
            self._report(s, "caught up")
            await self._swap(s)
            self._report(s, "swapped")
            return s.done

    async def verify(self) -> list[TableDifferences]:
        """Rebuild every read model in scratch tables and list how the live ones differ."""
        async with self._session() as s:
            await self._build(s)
            self._report(s, "caught up")
            # One snapshot for both sides: the live tables as of it, and the log up to
            # it projected into scratch (projections commit with their events).
            async with s.writer.transaction(isolation="repeatable_read"):
                await self._catch_up(s, fenced=False)
                found = [
                    await scratch.compare(s.writer, self.schema, s.live, table)
                    for table in self.projections.tables
                ]
            self._report(s, "compared")
            return [t for t in found if t.count]

    # ------------------------------------------------------------------ phases

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[_Session]:
        writer = await self.connect()
        reader = await self.connect()
        try:
            if not await writer.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", _LOCK):
                raise RebuildBusy("another replay or verify is running")
            live: str = await writer.fetchval("SELECT current_schema()")
            await scratch.create(writer, self.schema, live, self.projections.tables)
            # Projectors never qualify table names: they now write the scratch twins.
            await writer.execute(f"SET search_path = {ident(self.schema)}, {ident(live)}")
            await BatchedConnection.prepare_session(writer)
            total = await reader.fetchval(f"SELECT count(*) FROM {qualified(live, 'events')}")
            s = _Session(writer, reader, live, BatchedConnection(writer), total=total)
            try:
                yield s
            finally:
                # Best effort: a leftover scratch schema is dropped by the next run.
                with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                    await scratch.drop(writer, self.schema)
        finally:
            await reader.close()
            await writer.close()  # also releases the session lock

    async def _bulk(self, s: _Session) -> None:
        """Load everything below the fence through the mirrors, then continue from there."""
        mirrors = [self.mirrors[p.name] for p in self.projections.projectors]

        def scanned(done: int) -> None:
            s.done = done
            s.total = max(s.total, done)
            self._report(s, "replaying")

        s.cursor = await bulk.load(
            self.store,
            mirrors,
            s.reader,
            s.writer,
            self.schema,
            self.batch_size,
            scanned,
            self.parallel,
        )

    async def _build(self, s: _Session) -> None:
        """Project the log up to the fence, reading the next batch while one is applied."""
        batches: asyncio.Queue[list[RecordedEvent] | None] = asyncio.Queue(maxsize=2)

        async def read() -> None:
            after = s.cursor
            while True:
                batch = await self.store.read_all(after=after, limit=self.batch_size, conn=s.reader)
                await batches.put(batch)
                if len(batch) < self.batch_size:
                    await batches.put(None)
                    return
                after = _cursor(batch[-1])

        async def apply() -> None:
            while (batch := await batches.get()) is not None:
                async with s.writer.transaction():
                    await self._apply(s, batch)
                self._report(s, "replaying")

        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(read())
            tasks.create_task(apply())

    async def _catch_up(self, s: _Session, fenced: bool) -> None:
        """Project what was committed since the cursor, on the writer's transaction."""
        while True:
            batch = await self.store.read_all(
                after=s.cursor, limit=self.batch_size, conn=s.writer, fenced=fenced
            )
            await self._apply(s, batch)
            if len(batch) < self.batch_size:
                return

    async def _apply(self, s: _Session, batch: Sequence[RecordedEvent]) -> None:
        if not batch:
            return
        await self.projections.apply(s.batched, batch)  # type: ignore[arg-type]
        await s.batched.flush()
        s.cursor = _cursor(batch[-1])
        s.done += len(batch)
        s.total = max(s.total, s.done)

    async def _swap(self, s: _Session) -> None:
        """Catch up the tail with appends held off, then swap the tables atomically.

        LOCK TABLE events IN SHARE MODE waits for every transaction that has
        inserted events to end and holds new inserts back, so the unfenced read
        after it sees the whole log; nothing we have not projected can reach the
        old tables before they are retired. Lock waits are short and retried:
        a writer queued behind us must not wait long, and a deadlock with one
        (it read a read model, then appends) must cost us, not it.
        """
        live = [qualified(s.live, t) for t in self.projections.tables]
        for attempt in range(1, _SWAP_ATTEMPTS + 1):
            cursor, done = s.cursor, s.done
            try:
                async with s.writer.transaction():
                    await s.writer.execute("SET LOCAL lock_timeout = '2s'")
                    await s.writer.execute(
                        f"LOCK TABLE {qualified(s.live, 'events')} IN SHARE MODE"
                    )
                    await self._catch_up(s, fenced=False)
                    await s.writer.execute("SET LOCAL lock_timeout = '500ms'")
                    await s.writer.execute(f"LOCK TABLE {', '.join(live)} IN ACCESS EXCLUSIVE MODE")
                    await scratch.swap(
                        s.writer, self.schema, s.live, RETIRED, self.projections.tables
                    )
                break
            except (asyncpg.LockNotAvailableError, asyncpg.DeadlockDetectedError):
                if attempt == _SWAP_ATTEMPTS:
                    raise
                # The scratch writes of the attempt were rolled back with it.
                s.cursor, s.done = cursor, done
                s.batched.discard()
                await self._build(s)
        await scratch.drop(s.writer, RETIRED)

    def _report(self, s: _Session, phase: str) -> None:
        if self.progress is not None:
            self.progress(phase, s.done, s.total)


def _cursor(event: RecordedEvent) -> Cursor:
    return (event.transaction_id, event.position)
