"""The event store: append with optimistic concurrency, gap-free global reads, erasure."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from typing import Any, Protocol

import asyncpg

from events import statements as sql
from events.crypto import KeyRing
from events.datakeys import DataKeys, StreamErased
from events.groupcommit import GroupCommit
from events.notify import Waker
from events.reading import SEALED, LogReader
from events.types import EventRegistry, NewEvent, Payload, RecordedEvent

__all__ = ["ConcurrencyError", "EventStore", "StreamErased"]

InlineProjection = Callable[[asyncpg.Connection, Sequence[RecordedEvent]], Awaitable[None]]
Statement = tuple[str, Sequence[Any]]


class _Pending:
    """What a composed append's draft event holds where the log has not assigned a
    value yet; `NOW` stands for recorded_at (the transaction's start, now())."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<pending {self.name}>"


NOW: Any = _Pending("recorded_at")
PENDING_POSITION: Any = _Pending("position")
PENDING_TRANSACTION: Any = _Pending("transaction_id")


class Composer(Protocol):
    """The inline projection in a form that can join the append's own statement."""

    async def statements(self, event: RecordedEvent) -> list[Statement] | None:
        """The projection of a draft event (recorded_at is NOW, position and transaction
        id pending) as write statements, or None when it needs a transaction."""

    def committed(self, recorded: Sequence[RecordedEvent]) -> None:
        """A composed append committed (what the inline projection would do after it)."""


class ConcurrencyError(Exception):
    """The stream moved on since the caller read it (or an expected version was wrong)."""

    def __init__(self, stream_id: str, expected_version: int | None) -> None:
        super().__init__(f"stream {stream_id} is not at version {expected_version}")
        self.stream_id = stream_id
        self.expected_version = expected_version


_ATTEMPTS = 5  # expected_version=None appends retry a lost race this many times


class _NotWritten(Exception):
    """An attempt wrote nothing; `reason` says which check stopped it."""

    def __init__(self, reason: str, sealed_with: bytes | None) -> None:
        super().__init__(reason)
        self.reason = reason  # "checks" (version or key), "event_id" or "version"
        self.sealed_with = sealed_with


class _Again(Exception):
    """The attempt lost a race it may retry (stale cached key, or expected_version=None)."""


class EventStore(LogReader):
    """Appends events to streams and reads them back; knows nothing of HTTP or read models."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        registry: EventRegistry,
        keyring: KeyRing,
        waker: Waker | None = None,
        inline: InlineProjection | None = None,
        composer: Composer | None = None,
    ) -> None:
        self.pool = pool
        self.registry = registry
        self.keyring = keyring
        self.keys = DataKeys(keyring)
        self.waker = waker
        self.inline = inline
        self.composer = composer
        self._group = GroupCommit(self.append_group)
        # Event types appended so far in each open transaction(), by connection.
        self._appended: dict[int, set[str]] = {}

    # ------------------------------------------------------------------ writing

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection in a transaction; followers of the event types appended in it
        are woken only after it commits (nobody, when it appended nothing)."""
        appended: set[str] = set()
        async with self.pool.acquire() as conn:
            self._appended[id(conn)] = appended
            try:
                async with conn.transaction():
                    yield conn
            finally:
                self._appended.pop(id(conn), None)
        if appended:
            self.wake(appended)

    def wake(self, types: Collection[str] | None = None) -> None:
        """Tell followers events of `types` (None: any) were committed (coalesced, never
        inside a transaction)."""
        if self.waker is not None:
            self.waker.poke(types)

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int | None,
        metadata: Payload | None = None,
        conn: asyncpg.Connection | None = None,
        savepoint: bool = True,
    ) -> list[RecordedEvent]:
        """Append events if the stream is at `expected_version` (None: anywhere).

        With `conn`, runs inside the caller's transaction (the caller wakes
        followers after commit, e.g. through `transaction()`), which survives a
        lost race; otherwise in its own. Raises ConcurrencyError when the stream
        moved on, StreamErased for personal data on an erased stream. Appending
        the same event ids again returns the events recorded the first time.
        `savepoint=False` is for callers that abandon their whole transaction on a
        ConcurrencyError anyway (commands retry on fresh state): it saves the two
        round trips of the savepoint, and a lost race then always reads as a conflict.
        """
        if not events:
            return []
        metadata = metadata or {}
        for _ in range(_ATTEMPTS):
            try:
                return await self._append_once(
                    stream_id, events, expected_version, metadata, conn, savepoint
                )
            except _Again:
                continue
        raise ConcurrencyError(stream_id, expected_version)

    async def _append_once(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected: int | None,
        metadata: Payload,
        conn: asyncpg.Connection | None,
        savepoint: bool = True,
    ) -> list[RecordedEvent]:
        if conn is not None and not savepoint:
            try:
                return await self._write(conn, stream_id, events, expected, metadata)
            except _NotWritten as why:
                if why.reason != "checks":
                    # A unique violation aborted the caller's transaction: nothing more
                    # can be asked in it, and the caller retries on fresh state.
                    raise ConcurrencyError(stream_id, expected) from None
                return await self._explain(conn, stream_id, events, expected, why)
        if conn is not None:
            # A savepoint, so that the caller's transaction survives a lost race.
            try:
                async with conn.transaction():
                    return await self._write(conn, stream_id, events, expected, metadata)
            except _NotWritten as why:
                return await self._explain(conn, stream_id, events, expected, why)
        if self.inline is None:
            if len(events) == 1:
                # Concurrent single-event appends share one statement and one commit.
                return await self._group.append(stream_id, events[0], expected, metadata)
            return await self.append_alone(stream_id, events, expected, metadata)
        if self.composer is not None and len(events) == 1 and expected is not None:
            composed = await self._append_composed(stream_id, events[0], expected, metadata)
            if composed is not None:
                return composed
        try:
            async with self.transaction() as own:
                return await self._write(own, stream_id, events, expected, metadata)
        except _NotWritten as why:
            # The transaction was rolled back; ask outside it.
            async with self.pool.acquire() as own:
                return await self._explain(own, stream_id, events, expected, why)

    async def append_alone(
        self, stream_id: str, events: Sequence[NewEvent], expected: int | None, metadata: Payload
    ) -> list[RecordedEvent]:
        """The append as one statement of its own (no inline projection to run): the
        INSERT alone is one (implicit) transaction and costs a single round trip."""
        async with self.pool.acquire() as own:
            try:
                recorded = await self._write(own, stream_id, events, expected, metadata)
            except _NotWritten as why:
                return await self._explain(own, stream_id, events, expected, why)
        self.wake({e.event.type_name for e in events})
        return recorded

    async def append_group(
        self, requests: Sequence[tuple[str, NewEvent, int | None, Payload]]
    ) -> list[list[RecordedEvent] | BaseException]:
        """Single-event appends to distinct streams in one statement and one commit;
        each one's result (or error) in order. A request refused by its checks is
        answered as on its own; when the group's statement fails, and for a group
        of one, every request goes alone."""
        results: list[list[RecordedEvent] | BaseException | None] = [None] * len(requests)
        if len(requests) > 1:
            await self._write_group(requests, results)
        for i, (stream_id, new, expected, metadata) in enumerate(requests):
            if results[i] is None:
                try:
                    results[i] = await self.append_alone(stream_id, [new], expected, metadata)
                except Exception as exc:  # others of the group may be written: answer each
                    results[i] = exc
        return [r for r in results if r is not None]

    async def _write_group(
        self,
        requests: Sequence[tuple[str, NewEvent, int | None, Payload]],
        results: list[list[RecordedEvent] | BaseException | None],
    ) -> None:
        """Fill in the results of what the group statement wrote or refused; leave None
        where the request must go alone (the whole statement failed)."""
        async with self.pool.acquire() as conn:
            rows: list[tuple[int, Payload, Payload, bytes | None]] = []
            for i, (stream_id, new, expected, _) in enumerate(requests):
                payload = new.event.to_payload()
                try:
                    stored, key = await self._encode(
                        conn, stream_id, [new], [payload], expected == 0
                    )
                except StreamErased as exc:
                    results[i] = exc
                    continue
                rows.append((i, payload, stored[0], key[1] if key is not None else None))
            sent = [requests[i] for i, *_ in rows]
            try:
                written = await conn.fetch(
                    sql.APPEND_GROUP,
                    [stream_id for stream_id, *_ in sent],
                    [expected for _, _, expected, _ in sent],
                    [new.event_id for _, new, *_ in sent],
                    [new.event.type_name for _, new, *_ in sent],
                    [new.event.schema_version for _, new, *_ in sent],
                    [stored for _, _, stored, _ in rows],
                    [metadata for *_, metadata in sent],
                    [sealed_with for *_, sealed_with in rows],
                )
            except asyncpg.PostgresError:
                # Another process got to a stream, an event id came again, or one payload
                # cannot be stored: nothing of the group was written, and each request on
                # its own finds out which it was.
                return
            by_id = {row["event_id"]: row for row in written}
            for (i, payload, _, sealed_with), (stream_id, new, expected, metadata) in zip(
                rows, sent, strict=True
            ):
                row = by_id.get(new.event_id)
                if row is not None:
                    results[i] = [_recorded(row, stream_id, new, payload, metadata)]
                    continue
                why = _NotWritten("checks", sealed_with)
                try:
                    results[i] = await self._explain(conn, stream_id, [new], expected, why)
                except Exception as exc:  # this request's answer, not the group's
                    results[i] = exc
        self.wake({new.event.type_name for _, new, *_ in sent})

    async def _append_composed(
        self, stream_id: str, new: NewEvent, expected: int, metadata: Payload
    ) -> list[RecordedEvent] | None:
        """The append and its inline projection in one statement and one round trip;
        None when the projection cannot join it (the caller takes the transaction)."""
        assert self.composer is not None
        payload = new.event.to_payload()
        draft = RecordedEvent(
            position=PENDING_POSITION,
            transaction_id=PENDING_TRANSACTION,
            stream_id=stream_id,
            version=expected + 1,
            event_id=new.event_id,
            event_type=new.event.type_name,
            schema_version=new.event.schema_version,
            payload=payload,
            metadata=metadata,
            recorded_at=NOW,
        )
        statements = await self.composer.statements(draft)
        if statements is None:
            return None
        # A new stream's data key goes in the same statement (one round trip and one
        # commit less, and no key left behind when the statement fails).
        new_key = (
            expected == 0 and not self.keys.cached(stream_id) and bool(_personal(new, payload))
        )
        composed = sql.compose_one(statements, NOW, new_key)
        if composed is None:
            return None
        text, extra = composed
        async with self.pool.acquire() as own:
            try:
                recorded = await self._write(
                    own, stream_id, [new], expected, metadata, (text, extra), [payload], new_key
                )
            except _NotWritten as why:
                return await self._explain(own, stream_id, [new], expected, why)
        self.composer.committed(recorded)
        self.wake({new.event.type_name})
        return recorded

    async def _write(
        self,
        conn: asyncpg.Connection,
        stream_id: str,
        events: Sequence[NewEvent],
        expected: int | None,
        metadata: Payload,
        composed: tuple[str, Sequence[Any]] | None = None,
        payloads: list[Payload] | None = None,
        new_key: bool = False,
    ) -> list[RecordedEvent]:
        """Insert (with `composed`: that statement, APPEND_ONE plus its projection; with
        `new_key`, the statement also stores the fresh data key the payload is sealed with)."""
        if payloads is None:
            payloads = [new.event.to_payload() for new in events]
        stored, key = await self._encode(conn, stream_id, events, payloads, expected == 0, new_key)
        sealed_with = key[1] if key is not None else None
        if len(events) == 1:
            new = events[0]
            columns: tuple[Any, ...] = (
                new.event_id,
                new.event.type_name,
                new.event.schema_version,
                stored[0],
            )
        else:
            columns = (
                [e.event_id for e in events],
                [e.event.type_name for e in events],
                [e.event.schema_version for e in events],
                stored,
            )
        query = sql.APPEND_ONE if len(events) == 1 else sql.APPEND
        if composed is not None:
            query, extra = composed
            columns = (*columns, metadata, sealed_with, *extra)
        else:
            columns = (*columns, metadata, sealed_with)
        try:
            rows = await conn.fetch(query, stream_id, expected, *columns)
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == "events_event_id_key":
                raise _NotWritten("event_id", sealed_with) from exc
            if (exc.table_name or "events") == "events":
                raise _NotWritten("version", sealed_with) from exc
            raise  # a read model's key (a composed projection's): the caller's to answer
        except asyncpg.PostgresError as exc:
            if exc.sqlstate == sql.REFUSED:
                raise _NotWritten("checks", sealed_with) from exc
            raise
        if not rows:
            raise _NotWritten("checks", sealed_with)
        if new_key and key is not None:
            self.keys.remember(stream_id, key)
        recorded = [
            _recorded(row, stream_id, new, payload, metadata)
            for row, new, payload in zip(rows, events, payloads, strict=True)
        ]
        if self.inline is not None and composed is None:
            await self.inline(conn, recorded)
        appended = self._appended.get(id(conn))
        if appended is not None:
            appended.update(e.event_type for e in recorded)
        return recorded

    async def _explain(
        self,
        conn: asyncpg.Connection,
        stream_id: str,
        events: Sequence[NewEvent],
        expected: int | None,
        why: _NotWritten,
    ) -> list[RecordedEvent]:
        """Turn a write that did not happen into its answer (or `_Again`)."""
        ids = [e.event_id for e in events]
        if why.reason == "event_id":
            return await self._already_recorded(conn, stream_id, ids)
        if why.reason == "version":
            if expected is None:
                raise _Again
            raise ConcurrencyError(stream_id, expected)
        row = await conn.fetchrow(sql.WHY_NOT, stream_id, ids)
        if row["known"]:
            return await self._already_recorded(conn, stream_id, ids)
        if why.sealed_with is not None and row["wrapped"] != why.sealed_with:
            # The key we sealed with is not the stream's: erased, gone with the
            # transaction that made it, or another first writer's won. Retry with the
            # live one, if any.
            if row["erased"]:
                self.keys.forget(stream_id)
                raise StreamErased(stream_id)
            if row["wrapped"] is None:
                self.keys.forget(stream_id)
            else:
                self.keys.adopt(stream_id, row["wrapped"])
            raise _Again
        raise ConcurrencyError(stream_id, expected)

    async def _already_recorded(
        self, conn: asyncpg.Connection, stream_id: str, ids: list[Any]
    ) -> list[RecordedEvent]:
        rows = await conn.fetch(sql.BY_EVENT_ID, ids)
        if len(rows) != len(ids) or any(r["stream_id"] != stream_id for r in rows):
            raise ConcurrencyError(stream_id, None)
        return self._decode(rows)

    async def _encode(
        self,
        conn: asyncpg.Connection,
        stream_id: str,
        events: Sequence[NewEvent],
        payloads: Sequence[Payload],
        new_stream: bool = False,
        new_key: bool = False,
    ) -> tuple[list[Payload], tuple[bytes, bytes] | None]:
        """Payloads as stored, and the (data key, wrapped key) they were sealed with (if
        any). `new_key`: a fresh key the caller's statement stores."""
        stored: list[Payload] = []
        key: tuple[bytes, bytes] | None = None
        for new, payload in zip(events, payloads, strict=True):
            if not _personal(new, payload):
                stored.append(payload)
                continue
            if key is None and new_key:
                key = self.keys.fresh(stream_id)
            elif key is None:
                key = await self.keys.for_writing(conn, stream_id, new_stream)
            # Every personal field is sealed, None or not, so none shows in the clear.
            sealed = {k: payload.get(k) for k in new.event.personal if k in payload}
            plain = {k: v for k, v in payload.items() if k not in sealed}
            plain[SEALED] = self.keyring.seal(key[0], stream_id, sealed)
            stored.append(plain)
        return stored, key

    async def erase(self, conn: asyncpg.Connection, stream_id: str) -> None:
        """Destroy the stream's data key: its personal fields become unreadable for good."""
        await self.keys.erase(conn, stream_id)


def _personal(new: NewEvent, payload: Payload) -> list[str]:
    """The event's personal fields that hold a value (only those need a data key)."""
    return [k for k in new.event.personal if payload.get(k) is not None]


def _recorded(
    row: Any, stream_id: str, new: NewEvent, payload: Payload, metadata: Payload
) -> RecordedEvent:
    """The event as written, from the row the insert returned."""
    return RecordedEvent(
        position=row["position"],
        transaction_id=row["transaction_id"],
        stream_id=stream_id,
        version=row["version"],
        event_id=row["event_id"],
        event_type=new.event.type_name,
        schema_version=new.event.schema_version,
        payload=payload,
        metadata=metadata,
        recorded_at=row["recorded_at"],
    )
