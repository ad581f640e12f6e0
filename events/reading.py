"""Reading the log: one stream, or every stream in the gap-free global order."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from events import statements as sql
from events.crypto import KeyRing
from events.types import EventRegistry, RecordedEvent

SEALED = "$pii"  # payload key holding the encrypted personal fields


class LogReader:
    """Reads and decodes events (decrypting personal fields, upcasting old versions);
    the EventStore writes as well."""

    pool: asyncpg.Pool
    registry: EventRegistry
    keyring: KeyRing

    async def read_stream(
        self,
        stream_id: str,
        up_to_version: int | None = None,
        as_of: datetime | None = None,
        conn: asyncpg.Connection | None = None,
        after_version: int = 0,
    ) -> list[RecordedEvent]:
        """One stream in version order, optionally only after a version (the part a
        caller has not folded yet), up to a version or up to an instant."""
        rows = await (conn or self.pool).fetch(
            sql.READ_STREAM, stream_id, up_to_version, as_of, after_version
        )
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
        (see READ_ALL_UNFENCED in events/statements.py)."""
        tx, pos = after or (0, 0)
        queries = sql.READ_ALL if fenced else sql.READ_ALL_UNFENCED
        if stream_id is not None:
            query, args = queries["stream"], (stream_id, list(types) if types else None, limit)
        elif types:
            query, args = sql.typed_read(types, fenced), (limit,)
        else:
            query, args = queries["all"], (limit,)
        rows = await (conn or self.pool).fetch(query, tx, pos, *args)
        return self._decode(rows)

    async def pending(
        self, after: tuple[int, int] | None, types: Sequence[str] | None = None
    ) -> bool:
        """Whether committed events (of `types`) lie after the cursor: those read_all
        holds back behind its fence, or committed since the last read."""
        tx, pos = after or (0, 0)
        return bool(await self.pool.fetchval(sql.pending(types), tx, pos))

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
