"""The event store: append with optimistic concurrency, gap-free global reads, erasure."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from events.crypto import KeyRing
from events.notify import Waker
from events.types import EventRegistry, NewEvent, Payload, RecordedEvent

SEALED = "$pii"  # payload key holding the encrypted personal fields

InlineProjection = Callable[[asyncpg.Connection, Sequence[RecordedEvent]], Awaitable[None]]


class ConcurrencyError(Exception):
    """The stream moved on since the caller read it (or an expected version was wrong)."""

    def __init__(self, stream_id: str, expected_version: int | None) -> None:
        super().__init__(f"stream {stream_id} is not at version {expected_version}")
        self.stream_id = stream_id
        self.expected_version = expected_version


class StreamErased(Exception):
    """Personal data was offered for a stream whose data key is destroyed."""


_APPEND = """
WITH head AS (
    SELECT coalesce(max(version), 0) AS current FROM events WHERE stream_id = $1
)
INSERT INTO events (stream_id, version, event_id, event_type, schema_version, payload, metadata)
SELECT $1, head.current + n.ord, n.event_id, n.event_type, n.schema_version, n.payload, $7
FROM head,
     unnest($3::uuid[], $4::text[], $5::int[], $6::jsonb[])
        WITH ORDINALITY AS n(event_id, event_type, schema_version, payload, ord)
WHERE $2::int IS NULL OR head.current = $2::int
ORDER BY n.ord
RETURNING position, transaction_id, version, event_id, recorded_at
"""

_COLUMNS = """e.position, e.transaction_id, e.stream_id, e.version, e.event_id, e.event_type,
    e.schema_version, e.payload, e.metadata, e.recorded_at, k.wrapped_key"""

# The fence. Positions come from a sequence, so they are handed out in insert
# order, not commit order: a transaction holding position 10 can commit after
# the one holding 11, and a reader that had already moved past 11 would never
# see 10. Instead, the order is (writer transaction id, position), and a reader
# only looks at events whose writer is older than the oldest transaction still
# running (pg_snapshot_xmin of its own snapshot). Every such writer has finished,
# committed or not, so nothing can appear later "behind" what was returned; the
# fence and the rows come from one statement and therefore one snapshot.
_READ_ALL = f"""
SELECT {_COLUMNS}
FROM events e LEFT JOIN data_keys k ON k.stream_id = e.stream_id
WHERE (e.transaction_id, e.position) > ($1::xid8, $2::bigint)
  AND e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
  AND ($3::text[] IS NULL OR e.event_type = ANY($3::text[]))
  AND ($4::text IS NULL OR e.stream_id = $4::text)
ORDER BY e.transaction_id, e.position
LIMIT $5
"""

# The same read without the fence, for a reader that has excluded in-flight appends
# itself: one holding LOCK TABLE events IN SHARE MODE, or reading inside one
# REPEATABLE READ snapshot (a rebuild's final catch-up). Anywhere else it can skip.
_READ_ALL_UNFENCED = _READ_ALL.replace(
    "  AND e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())\n", ""
)
assert _READ_ALL_UNFENCED != _READ_ALL

_READ_STREAM = f"""
SELECT {_COLUMNS}
FROM events e LEFT JOIN data_keys k ON k.stream_id = e.stream_id
WHERE e.stream_id = $1
  AND ($2::int IS NULL OR e.version <= $2::int)
  AND ($3::timestamptz IS NULL OR e.recorded_at <= $3::timestamptz)
ORDER BY e.version
"""


class EventStore:
    """Appends events to streams and reads them back; knows nothing of HTTP or read models."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        registry: EventRegistry,
        keyring: KeyRing,
        waker: Waker | None = None,
        inline: InlineProjection | None = None,
    ) -> None:
        self.pool = pool
        self.registry = registry
        self.keyring = keyring
        self.waker = waker
        self.inline = inline

    # ------------------------------------------------------------------ writing

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection in a transaction; followers are woken only after it commits."""
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn
        self.wake()

    def wake(self) -> None:
        """Tell followers new events were committed (coalesced, never inside a transaction)."""
        if self.waker is not None:
            self.waker.poke()

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int | None,
        metadata: Payload | None = None,
        conn: asyncpg.Connection | None = None,
    ) -> list[RecordedEvent]:
        """Append events if the stream is at `expected_version` (None: anywhere).

        With `conn`, runs inside the caller's transaction (the caller wakes
        followers after commit, e.g. through `transaction()`); otherwise in its own.
        Raises ConcurrencyError when the stream moved on. Appending the same event
        ids again returns the events recorded the first time.
        """
        if conn is None:
            async with self.transaction() as own:
                return await self._append(own, stream_id, events, expected_version, metadata)
        return await self._append(conn, stream_id, events, expected_version, metadata)

    async def _append(
        self,
        conn: asyncpg.Connection,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int | None,
        metadata: Payload | None,
    ) -> list[RecordedEvent]:
        if not events:
            return []
        metadata = metadata or {}
        stored = await self._encode(conn, stream_id, events)
        try:
            # A savepoint, so that a caller's transaction survives a lost race.
            async with conn.transaction():
                rows = await conn.fetch(
                    _APPEND,
                    stream_id,
                    expected_version,
                    [e.event_id for e in events],
                    [e.event.type_name for e in events],
                    [e.event.schema_version for e in events],
                    stored,
                    metadata,
                )
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == "events_event_id_key":
                return await self._already_recorded(conn, stream_id, events)
            raise ConcurrencyError(stream_id, expected_version) from exc
        if not rows:
            raise ConcurrencyError(stream_id, expected_version)
        recorded = [
            RecordedEvent(
                position=row["position"],
                transaction_id=row["transaction_id"],
                stream_id=stream_id,
                version=row["version"],
                event_id=row["event_id"],
                event_type=new.event.type_name,
                schema_version=new.event.schema_version,
                payload=new.event.to_payload(),
                metadata=metadata,
                recorded_at=row["recorded_at"],
            )
            for row, new in zip(rows, events, strict=True)
        ]
        if self.inline is not None:
            await self.inline(conn, recorded)
        return recorded

    async def _already_recorded(
        self, conn: asyncpg.Connection, stream_id: str, events: Sequence[NewEvent]
    ) -> list[RecordedEvent]:
        ids = [e.event_id for e in events]
        rows = await conn.fetch(
            f"""SELECT {_COLUMNS} FROM events e LEFT JOIN data_keys k USING (stream_id)
                WHERE e.event_id = ANY($1::uuid[]) ORDER BY e.position""",
            ids,
        )
        if len(rows) != len(ids) or any(r["stream_id"] != stream_id for r in rows):
            raise ConcurrencyError(stream_id, None)
        return self._decode(rows)

    async def _encode(
        self, conn: asyncpg.Connection, stream_id: str, events: Sequence[NewEvent]
    ) -> list[Payload]:
        payloads: list[Payload] = []
        data_key: bytes | None = None
        for new in events:
            payload = new.event.to_payload()
            personal = {k: payload.pop(k) for k in new.event.personal if k in payload}
            if any(v is not None for v in personal.values()):
                if data_key is None:
                    data_key = await self._data_key(conn, stream_id)
                payload[SEALED] = self.keyring.seal(data_key, stream_id, personal)
            else:
                payload.update(personal)
            payloads.append(payload)
        return payloads

    async def _data_key(self, conn: asyncpg.Connection, stream_id: str) -> bytes:
        row = await conn.fetchrow(
            "SELECT wrapped_key FROM data_keys WHERE stream_id = $1", stream_id
        )
        if row is None:
            fresh = self.keyring.new_data_key()
            inserted = await conn.fetchval(
                """INSERT INTO data_keys (stream_id, wrapped_key) VALUES ($1, $2)
                   ON CONFLICT (stream_id) DO NOTHING RETURNING stream_id""",
                stream_id,
                self.keyring.wrap(stream_id, fresh),
            )
            if inserted is not None:
                return fresh
            row = await conn.fetchrow(
                "SELECT wrapped_key FROM data_keys WHERE stream_id = $1", stream_id
            )
        if row is None or row["wrapped_key"] is None:
            raise StreamErased(stream_id)
        return self.keyring.unwrap(stream_id, row["wrapped_key"])

    async def erase(self, conn: asyncpg.Connection, stream_id: str) -> None:
        """Destroy the stream's data key: its personal fields become unreadable for good."""
        await conn.execute(
            """INSERT INTO data_keys (stream_id, wrapped_key, erased_at) VALUES ($1, NULL, now())
               ON CONFLICT (stream_id) DO UPDATE SET wrapped_key = NULL, erased_at = now()""",
            stream_id,
        )

    # ------------------------------------------------------------------ reading

    async def read_stream(
        self,
        stream_id: str,
        up_to_version: int | None = None,
        as_of: datetime | None = None,
        conn: asyncpg.Connection | None = None,
    ) -> list[RecordedEvent]:
        """One stream in version order, optionally only up to a version or an instant."""
        rows = await (conn or self.pool).fetch(_READ_STREAM, stream_id, up_to_version, as_of)
        return self._decode(rows)

    async def read_all(
        self,
        after: tuple[int, int] | None = None,
        limit: int = 100,
        types: Sequence[str] | None = None,
        stream_id: str | None = None,
        conn: asyncpg.Connection | None = None,
        fenced: bool = True,
    ) -> list[RecordedEvent]:
        """Committed events after a cursor, oldest first; never skips nor reorders.

        `fenced=False` is only for callers that excluded in-flight appends themselves
        (see _READ_ALL_UNFENCED)."""
        tx, pos = after or (0, 0)
        query = _READ_ALL if fenced else _READ_ALL_UNFENCED
        rows = await (conn or self.pool).fetch(
            query, tx, pos, list(types) if types else None, stream_id, limit
        )
        return self._decode(rows)

    def _decode(self, rows: Sequence[Any]) -> list[RecordedEvent]:
        keys: dict[str, bytes | None] = {}
        out: list[RecordedEvent] = []
        for row in rows:
            stream_id = row["stream_id"]
            event_type = row["event_type"]
            payload = dict(row["payload"])
            erased = False
            sealed = payload.pop(SEALED, None)
            if sealed is not None:
                if stream_id not in keys:
                    wrapped = row["wrapped_key"]
                    keys[stream_id] = (
                        self.keyring.unwrap(stream_id, wrapped) if wrapped is not None else None
                    )
                key = keys[stream_id]
                if key is None:
                    erased = True
                    payload.update(dict.fromkeys(self.registry.personal_fields(event_type)))
                else:
                    payload.update(self.keyring.open(key, stream_id, sealed))
            version, payload = self.registry.upcast(event_type, row["schema_version"], payload)
            out.append(
                RecordedEvent(
                    position=row["position"],
                    transaction_id=row["transaction_id"],
                    stream_id=stream_id,
                    version=row["version"],
                    event_id=row["event_id"],
                    event_type=event_type,
                    schema_version=version,
                    payload=payload,
                    metadata=row["metadata"],
                    recorded_at=row["recorded_at"],
                    erased=erased,
                )
            )
        return out

    async def stream_version(self, stream_id: str, conn: asyncpg.Connection | None = None) -> int:
        """The stream's current version (0 when it has no events)."""
        return await (conn or self.pool).fetchval(
            "SELECT coalesce(max(version), 0) FROM events WHERE stream_id = $1", stream_id
        )
