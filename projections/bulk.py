"""The bulk path of `replay`: fold the log stream by stream in Python, COPY the rows.

The handler path spends its time on a statement per event; this one reads the
log once in (stream, version) order, folds each stream through the mirrors
(projections/mirrors/) and COPYs only the final rows. It covers every event
written by a transaction older than a fence (the xmin of one snapshot, as in the
gap-free read), so the handler path carries on from the cursor it returns.

Streams are independent, so the work splits by ranges of stream ids: with
`Parallel`, each range goes to a process of its own (decryption and JSON are
CPU-bound in Python). The fence makes every range read the same log, whatever
moment its own snapshot is taken at: transactions older than it are all over.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import asyncpg

from events.store import EventStore
from events.types import RecordedEvent
from projections.mirrors import MIRRORS, Mirror, Tables
from projections.mirrors.base import MirrorHandler, Row
from projections.registry import Projector

Cursor = tuple[int, int]
Connect = Callable[[], Awaitable[asyncpg.Connection]]
_LAST_POSITION = 2**63 - 1
_ROWS_PER_COPY = 20_000

# The store's columns (EventStore._decode reads them by name); metadata is not
# selected: no projection reads it, and decoding it is a tenth of the work.
_SCAN = """
SELECT e.position, e.transaction_id, e.stream_id, e.version, e.event_id, e.event_type,
       e.schema_version, e.payload, NULL::jsonb AS metadata, e.recorded_at, k.wrapped_key
FROM events e LEFT JOIN data_keys k ON k.stream_id = e.stream_id
WHERE e.transaction_id < $1::xid8 {range}
ORDER BY e.stream_id, e.version
"""

# Range boundaries that split the streams (those with data keys: nearly all) evenly.
_BOUNDARIES = """
SELECT min(stream_id) AS first FROM (
    SELECT stream_id, ntile($1) OVER (ORDER BY stream_id) AS part FROM data_keys
) s GROUP BY part ORDER BY 1 OFFSET 1
"""


@dataclass(frozen=True)
class Part:
    """One share of the work: the streams with lo <= id < hi, below the fence."""

    fence: int
    lo: str | None = None
    hi: str | None = None

    def query(self) -> tuple[str, list[Any]]:
        """The scan of this range, with its arguments (bounds only when set: index ranges)."""
        args: list[Any] = [self.fence]
        bounds = []
        for op, value in ((">=", self.lo), ("<", self.hi)):
            if value is not None:
                args.append(value)
                bounds.append(f"AND e.stream_id {op} ${len(args)}")
        return _SCAN.format(range=" ".join(bounds)), args


@dataclass(frozen=True)
class Parallel:
    """How worker processes reach the database and decode events (both picklable)."""

    workers: int
    connect: Connect
    store: Callable[[], EventStore]


class _Folder:
    """Folds one stream at a time and buffers the finished streams' rows per table."""

    def __init__(self, mirrors: Sequence[Mirror]) -> None:
        # Per event type, its handlers in projector order (as ProjectionSet.apply runs them).
        self.handlers: dict[str, list[MirrorHandler]] = {}
        for mirror in mirrors:
            for type_name, handler in mirror.handlers.items():
                self.handlers.setdefault(type_name, []).append(handler)
        self.columns = {t: _as_tuple(c) for m in mirrors for t, c in m.columns.items()}
        self.stream: str | None = None
        self.tables: Tables = {t: {} for t in self.columns}
        self.rows: dict[str, list[tuple[Any, ...]]] = {t: [] for t in self.columns}
        self.pending = 0

    def fold(self, events: Sequence[RecordedEvent]) -> None:
        for event in events:
            if event.stream_id != self.stream:
                self.finish_stream()
                self.stream = event.stream_id
            if event.erased:  # as ProjectionSet.apply: erased events are skipped
                continue
            for handler in self.handlers.get(event.event_type, ()):
                handler(self.tables, event)

    def finish_stream(self) -> None:
        for table, rows in self.tables.items():
            if rows:
                as_tuple = self.columns[table]
                self.rows[table].extend(as_tuple(row) for row in rows.values())
                self.pending += len(rows)
                rows.clear()
        self.stream = None

    def take(self) -> dict[str, list[tuple[Any, ...]]]:
        taken = self.rows
        self.rows = {t: [] for t in taken}
        self.pending = 0
        return taken


def _as_tuple(columns: Sequence[str]) -> Callable[[Row], tuple[Any, ...]]:
    """A row's values in column order (itemgetter, which returns a bare value for one key)."""
    if len(columns) == 1:
        return lambda row: (row[columns[0]],)
    return itemgetter(*columns)  # type: ignore[return-value]


async def load(
    store: EventStore,
    mirrors: Sequence[Mirror],
    reader: asyncpg.Connection,
    writer: asyncpg.Connection,
    schema: str,
    batch_size: int,
    progress: Callable[[int], None],
    parallel: Parallel | None = None,
) -> Cursor:
    """Fill the scratch tables from every event below the fence; returns the cursor after it."""
    fence = int(await reader.fetchval("SELECT pg_snapshot_xmin(pg_current_snapshot())"))
    workers = parallel.workers if parallel is not None else 1
    firsts = [r["first"] for r in await reader.fetch(_BOUNDARIES, workers)] if workers > 1 else []
    parts = [Part(fence, lo, hi) for lo, hi in zip([None, *firsts], [*firsts, None], strict=True)]
    if parallel is None or len(parts) < 2:
        await fill(store, mirrors, reader, writer, schema, batch_size, parts[0], progress)
    else:
        await _in_processes(parallel, mirrors, schema, batch_size, parts, progress)
    return (fence - 1, _LAST_POSITION)


async def fill(
    store: EventStore,
    mirrors: Sequence[Mirror],
    reader: asyncpg.Connection,
    writer: asyncpg.Connection,
    schema: str,
    batch_size: int,
    part: Part,
    progress: Callable[[int], None],
) -> None:
    """Scan one range, fold it and COPY the rows: three steps overlapping in a pipeline."""
    folder = _Folder(mirrors)
    columns = {t: list(c) for m in mirrors for t, c in m.columns.items()}
    batches: asyncio.Queue[list[Any] | None] = asyncio.Queue(maxsize=2)
    chunks: asyncio.Queue[dict[str, list[tuple[Any, ...]]] | None] = asyncio.Queue(maxsize=2)

    async def scan() -> None:
        query, args = part.query()
        async with reader.transaction(isolation="repeatable_read", readonly=True):
            cursor = await reader.cursor(query, *args)
            while rows := await cursor.fetch(batch_size):
                await batches.put(rows)
        await batches.put(None)

    async def fold() -> None:
        done = 0
        while (rows := await batches.get()) is not None:
            folder.fold(store._decode(rows))  # the store's own decryption and upcasting
            done += len(rows)
            progress(done)
            if folder.pending >= _ROWS_PER_COPY:
                await chunks.put(folder.take())
        folder.finish_stream()
        await chunks.put(folder.take())
        await chunks.put(None)

    async def copy() -> None:
        # Each COPY commits on its own: a long write transaction would hold its
        # xid, and with it the fence of every feed reader, for the whole load.
        while (chunk := await chunks.get()) is not None:
            for table, records in chunk.items():
                if records:
                    await writer.copy_records_to_table(
                        table, records=records, columns=columns[table], schema_name=schema
                    )

    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(scan())
        tasks.create_task(fold())
        tasks.create_task(copy())


async def _in_processes(
    parallel: Parallel,
    mirrors: Sequence[Mirror],
    schema: str,
    batch_size: int,
    parts: Sequence[Part],
    progress: Callable[[int], None],
) -> None:
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited loop
    counters = [ctx.Value("q", 0, lock=False) for _ in parts]
    names = [m.name for m in mirrors]
    processes = [
        ctx.Process(
            target=_worker,
            args=(parallel, names, schema, batch_size, part, counter),
            name=f"glue-replay-{i}",
            daemon=True,
        )
        for i, (part, counter) in enumerate(zip(parts, counters, strict=True))
    ]
    try:
        for process in processes:
            process.start()
        while any(p.is_alive() for p in processes):
            progress(sum(c.value for c in counters))
            await asyncio.sleep(0.2)  # polling children; nothing else to wait on
        progress(sum(c.value for c in counters))
        failed = [p.name for p in processes if p.exitcode != 0]
        if failed:
            raise RuntimeError(f"bulk replay worker(s) failed: {', '.join(failed)}")
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()


def _worker(
    parallel: Parallel, names: list[str], schema: str, batch_size: int, part: Part, counter: Any
) -> None:
    """A worker process: fill one range with connections of its own."""

    async def run() -> None:
        reader, writer = await parallel.connect(), await parallel.connect()
        try:

            def scanned(done: int) -> None:
                counter.value = done

            mirrors = [MIRRORS[n] for n in names]
            await fill(parallel.store(), mirrors, reader, writer, schema, batch_size, part, scanned)
        finally:
            await reader.close()
            await writer.close()

    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(run())


def stale(mirrors: dict[str, Mirror], projectors: Sequence[Projector]) -> list[str]:
    """Names of the projectors without a current mirror (the bulk path needs none)."""
    return [p.name for p in projectors if p.name not in mirrors or not mirrors[p.name].mirrors(p)]
