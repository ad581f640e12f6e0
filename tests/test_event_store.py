"""EventStore.append and reads: optimistic concurrency, idempotency, upcasting, append-only."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import asyncpg
import pytest

from events.crypto import KeyRing
from events.notify import Waker
from events.store import ConcurrencyError, EventStore
from events.types import Event, EventRegistry, NewEvent
from tests.eventlog import (
    Contacted,
    Noted,
    held_transaction,
    registry,
    unique_stream,
    wait_until_blocked_by,
)


@pytest.fixture
def store(pool: asyncpg.Pool, keyring: KeyRing) -> EventStore:
    """A store over the test event types."""
    return EventStore(pool, registry, keyring, Waker(pool))


def noted(*texts: str) -> list[NewEvent]:
    """New events, one per text."""
    return [NewEvent(Noted(text=t)) for t in texts]


async def versions(conn: asyncpg.Connection, stream: str) -> list[int]:
    """The stream's versions as stored."""
    rows = await conn.fetch("SELECT version FROM events WHERE stream_id = $1 ORDER BY 1", stream)
    return [r["version"] for r in rows]


# ------------------------------------------------------------------ optimistic concurrency


async def test_appends_number_a_stream_from_one_without_gaps(
    store: EventStore, conn: asyncpg.Connection
) -> None:
    stream = unique_stream()
    first = await store.append(stream, noted("a", "b"), expected_version=0)
    second = await store.append(stream, noted("c"), expected_version=2)
    assert [e.version for e in first + second] == [1, 2, 3]
    assert await versions(conn, stream) == [1, 2, 3]


async def test_of_two_racing_appends_at_one_version_exactly_one_wins(
    store: EventStore, pool: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    stream = unique_stream()
    await store.append(stream, noted("start"), expected_version=0)
    async with (
        held_transaction(pool) as (winner_conn, winner_tx),
        held_transaction(pool) as (loser_conn, _),
    ):
        await store.append(stream, noted("winner"), 1, conn=winner_conn)
        # The loser reads the same head (the winner has not committed) and then
        # waits on the winner's unique index entry: the race, not a stale read.
        loser = asyncio.create_task(store.append(stream, noted("loser"), 1, conn=loser_conn))
        await wait_until_blocked_by(conn, winner_conn)
        await winner_tx.commit()
        with pytest.raises(ConcurrencyError):
            await loser
    events = await store.read_stream(stream)
    assert [(e.version, e.payload["text"]) for e in events] == [(1, "start"), (2, "winner")]


async def test_a_racing_append_wins_when_the_first_one_rolls_back(
    store: EventStore, pool: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    stream = unique_stream()
    async with held_transaction(pool) as (first_conn, first_tx):
        await store.append(stream, noted("rolled back"), 0, conn=first_conn)
        second = asyncio.create_task(store.append(stream, noted("kept"), 0))
        await wait_until_blocked_by(conn, first_conn)
        await first_tx.rollback()
        recorded = await second
    assert [(e.version, e.payload["text"]) for e in recorded] == [(1, "kept")]
    assert await versions(conn, stream) == [1]


async def test_many_concurrent_appends_at_one_version_leave_one_winner_and_no_gap(
    store: EventStore, conn: asyncpg.Connection
) -> None:
    stream = unique_stream()
    outcomes = await asyncio.gather(
        *(store.append(stream, noted(f"w{i}"), 0) for i in range(8)), return_exceptions=True
    )
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    lost = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(won) == 1
    assert all(isinstance(o, ConcurrencyError) for o in lost)
    assert await versions(conn, stream) == [1]


async def test_a_caller_transaction_survives_a_lost_race(
    store: EventStore, pool: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    stream, other = unique_stream(), unique_stream()
    async with (
        held_transaction(pool) as (winner_conn, winner_tx),
        held_transaction(pool) as (loser_conn, loser_tx),
    ):
        await store.append(stream, noted("winner"), 0, conn=winner_conn)
        loser = asyncio.create_task(store.append(stream, noted("loser"), 0, conn=loser_conn))
        await wait_until_blocked_by(conn, winner_conn)
        await winner_tx.commit()
        with pytest.raises(ConcurrencyError):
            await loser
        # The unique violation was confined to a savepoint: the rest still commits.
        await store.append(other, noted("after the race"), 0, conn=loser_conn)
        await loser_tx.commit()
    assert [e.payload["text"] for e in await store.read_stream(other)] == ["after the race"]


@pytest.mark.parametrize("expected", [0, 2], ids=["stale", "too-high"])
async def test_a_wrong_expected_version_fails_and_writes_nothing(
    store: EventStore, conn: asyncpg.Connection, expected: int
) -> None:
    stream = unique_stream()
    await store.append(stream, noted("one"), 0)
    with pytest.raises(ConcurrencyError) as caught:
        await store.append(stream, noted("two"), expected)
    assert caught.value.expected_version == expected
    assert await versions(conn, stream) == [1]


async def test_appends_expecting_no_version_all_land_in_order_without_gaps(
    store: EventStore, conn: asyncpg.Connection
) -> None:
    stream = unique_stream()
    # They race for the same next version; "anywhere" retries instead of failing.
    await asyncio.gather(*(store.append(stream, noted(f"w{i}"), None) for i in range(6)))
    assert await versions(conn, stream) == [1, 2, 3, 4, 5, 6]


# ------------------------------------------------------------------ idempotency


async def test_retrying_an_append_with_the_same_event_ids_returns_the_first_recording(
    store: EventStore, conn: asyncpg.Connection
) -> None:
    stream = unique_stream()
    events = noted("a", "b")
    first = await store.append(stream, events, expected_version=0)
    again = await store.append(stream, events, expected_version=0)
    assert [(e.event_id, e.position, e.version) for e in again] == [
        (e.event_id, e.position, e.version) for e in first
    ]
    assert await versions(conn, stream) == [1, 2]


async def test_retrying_with_no_expected_version_writes_nothing_more(
    store: EventStore, conn: asyncpg.Connection
) -> None:
    stream = unique_stream()
    events = noted("a")
    first = await store.append(stream, events, expected_version=None)
    again = await store.append(stream, events, expected_version=None)
    assert [e.position for e in again] == [e.position for e in first]
    assert await versions(conn, stream) == [1]


async def test_an_event_id_recorded_in_another_stream_is_a_conflict(
    store: EventStore, conn: asyncpg.Connection
) -> None:
    events = noted("a")
    stream, other = unique_stream(), unique_stream()
    await store.append(stream, events, 0)
    with pytest.raises(ConcurrencyError):
        await store.append(other, events, 0)
    assert await versions(conn, other) == []


# ------------------------------------------------------------------ reads


async def test_read_stream_stops_at_a_version(store: EventStore) -> None:
    stream = unique_stream()
    await store.append(stream, noted("a", "b", "c"), 0)
    events = await store.read_stream(stream, up_to_version=2)
    assert [e.payload["text"] for e in events] == ["a", "b"]


async def test_read_stream_stops_at_an_instant(store: EventStore) -> None:
    stream = unique_stream()
    early = await store.append(stream, noted("early"), 0)
    await store.append(stream, noted("late"), 1)
    events = await store.read_stream(stream, as_of=early[0].recorded_at)
    assert [e.payload["text"] for e in events] == ["early"]


async def test_read_all_filters_by_type_and_stream_after_a_cursor(
    store: EventStore, conn: asyncpg.Connection
) -> None:
    stream = unique_stream()
    start = await store.append(stream, noted("before"), 0)
    await store.append(stream, noted("a", "b", "c"), 1)
    after = (start[0].transaction_id, start[0].position)
    picked = await store.read_all(after=after, stream_id=stream, types=["TestNoted"], limit=2)
    assert [e.payload["text"] for e in picked] == ["a", "b"]
    assert await store.read_all(after=after, stream_id=stream, types=["NoSuchType"]) == []


async def test_read_all_by_several_types_merges_them_in_feed_order_up_to_the_limit(
    store: EventStore,
) -> None:
    stream = unique_stream()
    start = await store.append(stream, noted("before"), 0)
    mixed = [
        NewEvent(Noted(text="a")),
        NewEvent(Contacted(sku="b")),
        NewEvent(Noted(text="c")),
        NewEvent(Contacted(sku="d")),
        NewEvent(Noted(text="e")),
    ]
    await store.append(stream, mixed, 1)
    after = (start[0].transaction_id, start[0].position)
    picked = await store.read_all(after=after, types=["TestContacted", "TestNoted"], limit=4)
    assert [e.payload.get("text") or e.payload["sku"] for e in picked] == ["a", "b", "c", "d"]


@pytest.mark.parametrize("odd", ["it's", "back\\slash", "E'x' OR true --"])
async def test_read_all_takes_types_as_data_not_sql(store: EventStore, odd: str) -> None:
    stream = unique_stream()
    await store.append(stream, noted("a"), 0)
    assert await store.read_all(types=[odd]) == []


async def test_appending_nothing_records_nothing(store: EventStore) -> None:
    stream = unique_stream()
    assert await store.append(stream, [], 0) == []
    assert await store.stream_version(stream) == 0


# ------------------------------------------------------------------ upcasting

old_registry = EventRegistry()
new_registry = EventRegistry()


@old_registry.register
@dataclass(frozen=True)
class RenamedV1(Event):
    type_name = "TestRenamed"
    schema_version = 1

    full_name: str


@new_registry.register
@dataclass(frozen=True)
class RenamedV2(Event):
    type_name = "TestRenamed"
    schema_version = 2

    first_name: str
    last_name: str


@new_registry.upcaster("TestRenamed", 1)
def _split_name(payload: dict[str, object]) -> dict[str, object]:
    first, _, last = str(payload.pop("full_name")).partition(" ")
    return {**payload, "first_name": first, "last_name": last}


async def test_an_old_schema_version_is_upcast_on_read_and_the_row_is_untouched(
    pool: asyncpg.Pool, keyring: KeyRing, conn: asyncpg.Connection
) -> None:
    stream = unique_stream()
    await EventStore(pool, old_registry, keyring).append(
        stream, [NewEvent(RenamedV1(full_name="Ada Lovelace"))], 0
    )
    [event] = await EventStore(pool, new_registry, keyring).read_stream(stream)
    assert event.schema_version == 2
    assert event.to_event(new_registry) == RenamedV2(first_name="Ada", last_name="Lovelace")
    row = await conn.fetchrow(
        "SELECT schema_version, payload FROM events WHERE stream_id = $1", stream
    )
    assert (row["schema_version"], row["payload"]) == (1, {"full_name": "Ada Lovelace"})


# ------------------------------------------------------------------ append-only


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE events SET payload = '{}' WHERE stream_id = $1",
        "DELETE FROM events WHERE stream_id = $1",
        "TRUNCATE events",
    ],
    ids=["update", "delete", "truncate"],
)
async def test_the_events_table_refuses_changes(
    store: EventStore, conn: asyncpg.Connection, statement: str
) -> None:
    stream = unique_stream()
    await store.append(stream, noted("kept"), 0)
    args = [stream] if "$1" in statement else []
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await conn.execute(statement, *args)
    assert [e.payload["text"] for e in await store.read_stream(stream)] == ["kept"]


async def test_event_ids_are_unique_across_the_log(conn: asyncpg.Connection) -> None:
    event_id = uuid.uuid4()
    insert = """INSERT INTO events (stream_id, version, event_id, event_type, payload)
                VALUES ($1, 1, $2, 'TestNoted', '{}')"""
    await conn.execute(insert, unique_stream(), event_id)
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute(insert, unique_stream(), event_id)
