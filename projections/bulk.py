"""The bulk path of `replay`: fold the log stream by stream in Python, COPY the rows.

The handler path spends its time on a statement per event; this one reads the
log once in (stream, version) order from a single snapshot, folds each stream
through the mirrors (projections/mirrors.py) and COPYs only the final rows.
It covers every event written by a transaction older than the snapshot's xmin,
the same fence the gap-free read uses, so the handler path can carry on after it
from the cursor it returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from events.store import EventStore
from events.types import RecordedEvent
from projections.mirrors import Mirror, Tables
from projections.registry import Projector

Cursor = tuple[int, int]
_LAST_POSITION = 2**63 - 1
_ROWS_PER_COPY = 20_000

# The store's columns (EventStore._decode reads them by name); metadata is not
# selected: no projection reads it, and decoding it is a tenth of the work.
_SCAN = """
SELECT e.position, e.transaction_id, e.stream_id, e.version, e.event_id, e.event_type,
       e.schema_version, e.payload, NULL::jsonb AS metadata, e.recorded_at, k.wrapped_key
FROM events e LEFT JOIN data_keys k ON k.stream_id = e.stream_id
WHERE e.transaction_id < $1::xid8
ORDER BY e.stream_id, e.version
"""


class _Folder:
    """Folds one stream at a time and buffers the finished streams' rows per table."""

    def __init__(self, mirrors: Sequence[Mirror]) -> None:
        self.mirrors = mirrors
        self.handlers = [(m.handlers, m) for m in mirrors]
        self.stream: str | None = None
        self.tables: Tables = self._empty()
        self.rows: dict[str, list[tuple[Any, ...]]] = {t: [] for m in mirrors for t in m.columns}
        self.pending = 0

    def _empty(self) -> Tables:
        return {t: {} for m in self.mirrors for t in m.columns}

    def fold(self, events: Sequence[RecordedEvent]) -> None:
        for event in events:
            if event.stream_id != self.stream:
                self.finish_stream()
                self.stream = event.stream_id
            if event.erased:  # as ProjectionSet.apply: erased events are skipped
                continue
            for handlers, _ in self.handlers:
                handler = handlers.get(event.event_type)
                if handler is not None:
                    handler(self.tables, event)

    def finish_stream(self) -> None:
        for mirror in self.mirrors:
            for table, columns in mirror.columns.items():
                out = self.rows[table]
                for row in self.tables[table].values():
                    out.append(tuple(row[c] for c in columns))
                    self.pending += 1
        self.tables = self._empty()
        self.stream = None

    def take(self) -> dict[str, list[tuple[Any, ...]]]:
        taken = self.rows
        self.rows = {t: [] for t in taken}
        self.pending = 0
        return taken


async def load(
    store: EventStore,
    mirrors: Sequence[Mirror],
    reader: asyncpg.Connection,
    writer: asyncpg.Connection,
    schema: str,
    batch_size: int,
    progress: Callable[[int], None],
) -> Cursor:
    """Fill the scratch tables from every event below the fence; returns the cursor after it."""
    folder = _Folder(mirrors)
    columns = {t: list(c) for m in mirrors for t, c in m.columns.items()}
    chunks: asyncio.Queue[dict[str, list[tuple[Any, ...]]] | None] = asyncio.Queue(maxsize=2)

    async def copy() -> None:
        # Each COPY commits on its own: a long write transaction would hold its
        # xid, and with it the fence of every feed reader, for the whole load.
        while (chunk := await chunks.get()) is not None:
            for table, records in chunk.items():
                if records:
                    await writer.copy_records_to_table(
                        table, records=records, columns=columns[table], schema_name=schema
                    )

    async def scan() -> Cursor:
        # Reads the next batch while the previous one is decrypted and folded.
        async with reader.transaction(isolation="repeatable_read", readonly=True):
            fence = await reader.fetchval("SELECT pg_snapshot_xmin(pg_current_snapshot())")
            cursor = await reader.cursor(_SCAN, fence)
            while rows := await cursor.fetch(batch_size):
                await batches.put(rows)
        await batches.put(None)
        return (int(fence) - 1, _LAST_POSITION)

    async def fold() -> None:
        done = 0
        while (rows := await batches.get()) is not None:
            folder.fold(store._decode(rows))  # the store's decryption and upcasting
            done += len(rows)
            progress(done)
            if folder.pending >= _ROWS_PER_COPY:
                await chunks.put(folder.take())
        folder.finish_stream()
        await chunks.put(folder.take())
        await chunks.put(None)

    batches: asyncio.Queue[list[Any] | None] = asyncio.Queue(maxsize=2)
    async with asyncio.TaskGroup() as tasks:
        scanned = tasks.create_task(scan())
        tasks.create_task(fold())
        tasks.create_task(copy())
    return scanned.result()


def stale(mirrors: dict[str, Mirror], projectors: Sequence[Projector]) -> list[str]:
    """Names of the projectors without a current mirror (the bulk path needs none)."""
    return [p.name for p in projectors if p.name not in mirrors or not mirrors[p.name].mirrors(p)]
