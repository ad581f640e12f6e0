"""Group commit: concurrent single-event appends share one statement and one commit,
yet each is checked, answered and refused as if it had been alone."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence

import asyncpg
import pytest

from events.crypto import KeyRing
from events.groupcommit import IN_FLIGHT, GroupCommit, Request
from events.store import ConcurrencyError, EventStore, StreamErased
from events.types import NewEvent, RecordedEvent
from service import db
from tests.eventlog import Contacted, Noted, registry, unique_stream


def others(store: EventStore, count: int = IN_FLIGHT) -> list[Awaitable[object]]:
    """Appends to fresh streams: with them, more arrive at once than may go side by
    side, so they are written as one group."""
    return [store.append(unique_stream(), [NewEvent(Noted("other", i))], 0) for i in range(count)]


@pytest.fixture
def store(pool: asyncpg.Pool, keyring: KeyRing) -> EventStore:
    """A store with no inline projection: its single-event appends go by group commit."""
    return EventStore(pool, registry, keyring)


async def test_concurrent_appends_to_many_streams_share_commits_and_all_land(
    store: EventStore,
) -> None:
    streams = [unique_stream() for _ in range(40)]
    results = await asyncio.gather(
        *(store.append(s, [NewEvent(Noted("x", i))], 0) for i, s in enumerate(streams))
    )
    recorded = [r[0] for r in results]
    assert [e.stream_id for e in recorded] == streams
    assert all(e.version == 1 for e in recorded)
    # Fewer commits than appends: they went in groups.
    assert len({e.transaction_id for e in recorded}) < len(streams)
    for stream, event in zip(streams, recorded, strict=True):
        [stored] = await store.read_stream(stream)
        assert stored.event_id == event.event_id


async def test_appends_few_enough_to_go_side_by_side_are_each_written_alone(
    store: EventStore,
) -> None:
    streams = [unique_stream() for _ in range(IN_FLIGHT)]
    results = await asyncio.gather(
        *(store.append(s, [NewEvent(Noted("x", i))], 0) for i, s in enumerate(streams))
    )
    assert len({r[0].transaction_id for r in results}) == IN_FLIGHT


async def test_a_stale_append_is_refused_while_the_rest_of_its_group_lands(
    store: EventStore,
) -> None:
    stale, fine, also = unique_stream(), unique_stream(), unique_stream()
    await store.append(stale, [NewEvent(Noted("first", 1))], 0)
    outcomes = await asyncio.gather(
        store.append(stale, [NewEvent(Noted("stale", 2))], 0),
        store.append(fine, [NewEvent(Noted("fine", 1))], 0),
        store.append(also, [NewEvent(Noted("also", 1))], 0),
        *others(store),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], ConcurrencyError)
    [a], [b] = outcomes[1], outcomes[2]  # type: ignore[misc]
    assert a.transaction_id == b.transaction_id  # one group, one commit
    assert [e.payload["text"] for e in await store.read_stream(stale)] == ["first"]


async def test_appends_to_one_stream_at_once_go_in_successive_groups_in_order(
    store: EventStore,
) -> None:
    stream = unique_stream()
    first, second = await asyncio.gather(
        store.append(stream, [NewEvent(Noted("one", 1))], 0),
        store.append(stream, [NewEvent(Noted("two", 2))], 1),
    )
    assert (first[0].version, second[0].version) == (1, 2)
    assert second[0].transaction_id > first[0].transaction_id
    assert [e.payload["text"] for e in await store.read_stream(stream)] == ["one", "two"]


async def test_a_repeated_event_id_in_a_group_is_settled_alone_without_losing_the_others(
    store: EventStore,
) -> None:
    # The same event id for two streams: the group's statement hits the unique key,
    # writes nothing, and each append is then made alone.
    new = NewEvent(Noted("twice", 1))
    first, second, other = unique_stream(), unique_stream(), unique_stream()
    outcomes = await asyncio.gather(
        store.append(first, [new], 0),
        store.append(second, [new], 0),
        store.append(other, [NewEvent(Noted("other", 1))], 0),
        *others(store),
        return_exceptions=True,
    )
    assert [e.event_id for e in outcomes[0]] == [new.event_id]  # type: ignore[union-attr]
    assert isinstance(outcomes[1], ConcurrencyError)
    assert len(outcomes[2]) == 1  # type: ignore[arg-type]
    assert await store.read_stream(second) == []


async def test_an_append_repeated_with_its_event_id_returns_the_first_recording(
    store: EventStore,
) -> None:
    stream = unique_stream()
    new = NewEvent(Noted("again", 1))
    [first] = await store.append(stream, [new], 0)
    [again], [_other] = await asyncio.gather(
        store.append(stream, [new], 0),
        store.append(unique_stream(), [NewEvent(Noted("o", 1))], 0),
    )
    assert (again.event_id, again.position) == (first.event_id, first.position)


async def test_an_erased_stream_in_a_group_is_refused_and_the_others_land(
    store: EventStore, database: str
) -> None:
    erased, fine = unique_stream(), unique_stream()
    await store.append(erased, [NewEvent(Contacted("sku", "a@b.c", "A"))], 0)
    conn: asyncpg.Connection = await db.connect(database)
    try:
        await store.erase(conn, erased)
    finally:
        await conn.close()
    outcomes = await asyncio.gather(
        store.append(erased, [NewEvent(Contacted("sku", "b@c.d", "B"))], 1),
        store.append(fine, [NewEvent(Contacted("sku", "c@d.e", "C"))], 0),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], StreamErased)
    [landed] = outcomes[1]  # type: ignore[misc]
    [stored] = await store.read_stream(fine)
    assert stored.payload["email"] == "c@d.e" and landed.version == 1


async def test_an_append_cancelled_while_it_waits_for_a_group_is_never_sent() -> None:
    # The queueing alone, with a writer that holds its group until let go.
    let_go = asyncio.Event()
    sent: list[list[str]] = []

    async def write(requests: Sequence[Request]) -> list[list[RecordedEvent] | BaseException]:
        sent.append([r[0] for r in requests])
        await let_go.wait()
        return [[] for _ in requests]

    group = GroupCommit(write, in_flight=1)
    first = asyncio.create_task(group.append("a", NewEvent(Noted("a")), 0, {}))
    while not sent:  # the first group is being written
        await asyncio.sleep(0)
    waiting = asyncio.create_task(group.append("b", NewEvent(Noted("b")), 0, {}))
    after = asyncio.create_task(group.append("c", NewEvent(Noted("c")), 0, {}))
    await asyncio.sleep(0)  # both queued behind it
    waiting.cancel()
    let_go.set()
    await asyncio.gather(first, after)
    assert sent == [["a"], ["c"]]


async def test_a_payload_the_database_refuses_fails_alone_and_the_rest_of_its_group_lands(
    store: EventStore,
) -> None:
    bad, good = unique_stream(), unique_stream()
    outcomes = await asyncio.gather(
        store.append(bad, [NewEvent(Noted("nul \x00 inside", 1))], 0),
        store.append(good, [NewEvent(Noted("fine", 1))], 0),
        *others(store),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], asyncpg.PostgresError)  # jsonb cannot hold NUL
    assert len(outcomes[1]) == 1  # type: ignore[arg-type]
    assert await store.read_stream(bad) == []
    assert len(await store.read_stream(good)) == 1
