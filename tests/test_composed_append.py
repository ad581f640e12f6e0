"""An append and its inline projection in one statement: same effects, same refusals,
and nothing half-written when the append's checks or the projection refuse."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import pytest

from events import statements
from events.crypto import KeyRing
from events.store import NOW, ConcurrencyError, EventStore, Statement, StreamErased
from events.types import NewEvent, RecordedEvent
from projections import composing
from projections.registry import ProjectionSet, Projector
from tests.eventlog import Contacted, Noted, registry, unique_stream

TABLES = """
CREATE TABLE IF NOT EXISTS noted_latest (
    stream_id text PRIMARY KEY, text text NOT NULL, n integer NOT NULL,
    recorded_at timestamptz NOT NULL);
CREATE TABLE IF NOT EXISTS noted_texts (text text PRIMARY KEY, stream_id text NOT NULL);
"""

latest = Projector(name="latest", tables=("noted_latest", "noted_texts"))


@latest.on("TestNoted")
async def _noted(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    p = event.payload
    await conn.execute(
        """INSERT INTO noted_latest (stream_id, text, n, recorded_at) VALUES ($1, $2, $3, $4)
           ON CONFLICT (stream_id) DO UPDATE SET text = $2, n = $3, recorded_at = $4""",
        event.stream_id,
        p["text"],
        p["n"],
        event.recorded_at,
    )
    # A unique key of the read model's own, as customer_emails has.
    await conn.execute(
        "INSERT INTO noted_texts (text, stream_id) VALUES ($1, $2)", p["text"], event.stream_id
    )


@latest.on("TestContacted")
async def _contacted(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    # Reads first: this one cannot be recorded and takes the transaction path.
    known = await conn.fetchval(
        "SELECT count(*) FROM noted_latest WHERE stream_id = $1", event.stream_id
    )
    await conn.execute(
        """INSERT INTO noted_latest (stream_id, text, n, recorded_at) VALUES ($1, 'contacted', $2, $3)
           ON CONFLICT (stream_id) DO UPDATE SET text = 'contacted', n = $2, recorded_at = $3""",
        event.stream_id,
        known,
        event.recorded_at,
    )


class Composer:
    """The test projection as a Composer, remembering which appends went composed."""

    def __init__(self, projections: ProjectionSet) -> None:
        self.projections = projections
        self.composed: list[RecordedEvent] = []

    async def statements(self, event: RecordedEvent) -> list[Statement] | None:
        return await composing.record(self.projections, event)

    def committed(self, recorded: Sequence[RecordedEvent]) -> None:
        self.composed.extend(recorded)


@pytest.fixture
def composer() -> Composer:
    return Composer(ProjectionSet([latest]))


@pytest.fixture
async def store(pool: asyncpg.Pool, keyring: KeyRing, composer: Composer) -> EventStore:
    await pool.execute(TABLES)
    projections = composer.projections
    return EventStore(pool, registry, keyring, inline=projections.apply, composer=composer)


CONTACT_TABLES = """
CREATE TABLE IF NOT EXISTS contacted_skus (
    stream_id text PRIMARY KEY, sku text NOT NULL UNIQUE);
"""

# Personal data, projected without reading: composed, with a new stream's data key.
contacts = Projector(name="contacts", tables=("contacted_skus",))


@contacts.on("TestContacted")
async def _contact(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    await conn.execute(
        "INSERT INTO contacted_skus (stream_id, sku) VALUES ($1, $2)",
        event.stream_id,
        event.payload["sku"],
    )


@pytest.fixture
async def contact_store(pool: asyncpg.Pool, keyring: KeyRing) -> tuple[EventStore, Composer]:
    await pool.execute(CONTACT_TABLES)
    composer = Composer(ProjectionSet([contacts]))
    store = EventStore(
        pool, registry, keyring, inline=composer.projections.apply, composer=composer
    )
    return store, composer


async def key_of(pool: asyncpg.Pool, stream: str) -> bytes | None:
    return await pool.fetchval("SELECT wrapped_key FROM data_keys WHERE stream_id = $1", stream)


async def test_a_composed_append_writes_the_event_and_its_projection_with_one_timestamp(
    store: EventStore, composer: Composer, pool: asyncpg.Pool
) -> None:
    stream = unique_stream()
    [event] = await store.append(stream, [NewEvent(Noted(f"a-{stream}", 1))], 0)
    assert [e.event_id for e in composer.composed] == [event.event_id]
    row = await pool.fetchrow("SELECT * FROM noted_latest WHERE stream_id = $1", stream)
    assert (row["text"], row["n"]) == (f"a-{stream}", 1)
    # NOW became now(): the transaction's start, which the log wrote as recorded_at.
    assert row["recorded_at"] == event.recorded_at
    [stored] = await store.read_stream(stream)
    assert stored.recorded_at == event.recorded_at and stored.version == 1


async def test_a_composed_append_refused_by_its_checks_leaves_the_read_model_alone(
    store: EventStore, composer: Composer, pool: asyncpg.Pool
) -> None:
    stream = unique_stream()
    await store.append(stream, [NewEvent(Noted(f"first-{stream}", 1))], 0)
    with pytest.raises(ConcurrencyError):
        # Stale: the stream is at version 1. The projection's statements ran in the
        # same statement as the refused insert and must be undone with it.
        await store.append(stream, [NewEvent(Noted(f"stale-{stream}", 2))], 0)
    row = await pool.fetchrow("SELECT text, n FROM noted_latest WHERE stream_id = $1", stream)
    assert (row["text"], row["n"]) == (f"first-{stream}", 1)
    assert await pool.fetchval("SELECT count(*) FROM noted_texts WHERE stream_id = $1", stream) == 1
    assert len(await store.read_stream(stream)) == 1


async def test_a_read_model_key_violation_surfaces_and_appends_nothing(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    first, second = unique_stream(), unique_stream()
    await store.append(first, [NewEvent(Noted(f"taken-{first}", 1))], 0)
    with pytest.raises(asyncpg.UniqueViolationError) as raised:
        await store.append(second, [NewEvent(Noted(f"taken-{first}", 1))], 0)
    assert raised.value.table_name == "noted_texts"
    assert await store.read_stream(second) == []
    assert (
        await pool.fetchval("SELECT count(*) FROM noted_latest WHERE stream_id = $1", second) == 0
    )


async def test_the_same_event_appended_again_returns_the_first_recording(
    store: EventStore,
) -> None:
    stream = unique_stream()
    new = NewEvent(Noted(f"again-{stream}", 1))
    [first] = await store.append(stream, [new], 0)
    [again] = await store.append(stream, [new], 0)
    assert (again.event_id, again.position) == (first.event_id, first.position)


async def test_a_projection_that_reads_takes_the_transaction_path(
    store: EventStore, composer: Composer, pool: asyncpg.Pool
) -> None:
    stream = unique_stream()
    await store.append(stream, [NewEvent(Noted(f"b-{stream}", 1))], 0)
    [event] = await store.append(stream, [NewEvent(Contacted("sku", "a@b.c"))], 1)
    assert event.event_id not in {e.event_id for e in composer.composed}
    row = await pool.fetchrow(
        "SELECT text, n, recorded_at FROM noted_latest WHERE stream_id = $1", stream
    )
    assert (row["text"], row["n"]) == ("contacted", 1)
    assert row["recorded_at"] == event.recorded_at


async def test_several_events_take_the_transaction_path(
    store: EventStore, composer: Composer, pool: asyncpg.Pool
) -> None:
    stream = unique_stream()
    news = [NewEvent(Noted(f"c{i}-{stream}", i)) for i in (1, 2)]
    recorded = await store.append(stream, news, 0)
    assert composer.composed == []
    assert [e.version for e in recorded] == [1, 2]
    row = await pool.fetchrow("SELECT text, n FROM noted_latest WHERE stream_id = $1", stream)
    assert (row["text"], row["n"]) == (f"c2-{stream}", 2)


def test_statements_writing_one_table_twice_are_not_composed() -> None:
    twice = [("UPDATE t SET a = $1", [1]), ("UPDATE t SET b = $1", [2])]
    assert statements.compose_one(twice, NOW) is None


def test_a_statement_reading_another_ones_table_is_not_composed() -> None:
    # Sequentially the second would see the first's write; in one statement it would not.
    reads = [
        ("INSERT INTO a (x) VALUES ($1)", [1]),
        ("UPDATE b SET n = (SELECT count(*) FROM a)", []),
    ]
    assert statements.compose_one(reads, NOW) is None


def test_arguments_are_renumbered_after_the_appends_and_now_is_inlined() -> None:
    composed = statements.compose_one(
        [("UPDATE t SET at = $2, v = $1 WHERE k = $3", ["v", NOW, "k"])], NOW
    )
    assert composed is not None
    text, args = composed
    n = statements.APPEND_ARGUMENTS
    assert f"UPDATE t SET at = now(), v = ${n + 1} WHERE k = ${n + 2}" in text
    assert args == ["v", "k"]


def test_arguments_that_do_not_match_their_placeholders_are_not_composed() -> None:
    assert statements.compose_one([("UPDATE t SET a = $1, b = $2", [1])], NOW) is None
    assert statements.compose_one([("UPDATE t SET a = $1", [1, 2])], NOW) is None


# ------------------------------------------------------------ a new stream's data key


async def test_a_new_streams_data_key_is_stored_by_the_composed_append(
    contact_store: tuple[EventStore, Composer], pool: asyncpg.Pool
) -> None:
    store, composer = contact_store
    stream = unique_stream()
    [event] = await store.append(stream, [NewEvent(Contacted(f"s-{stream}", "a@b.c"))], 0)
    assert [e.event_id for e in composer.composed] == [event.event_id]
    assert await key_of(pool, stream) is not None
    [stored] = await store.read_stream(stream)
    assert stored.payload["email"] == "a@b.c"


async def test_a_failed_first_append_leaves_no_data_key_behind(
    contact_store: tuple[EventStore, Composer], pool: asyncpg.Pool
) -> None:
    store, _ = contact_store
    first, second = unique_stream(), unique_stream()
    await store.append(first, [NewEvent(Contacted(f"dup-{first}", "a@b.c"))], 0)
    with pytest.raises(asyncpg.UniqueViolationError):
        await store.append(second, [NewEvent(Contacted(f"dup-{first}", "b@b.c"))], 0)
    assert await key_of(pool, second) is None
    assert await store.read_stream(second) == []


async def test_a_first_append_whose_key_another_writer_made_is_sealed_with_that_key(
    contact_store: tuple[EventStore, Composer], pool: asyncpg.Pool, keyring: KeyRing
) -> None:
    store, _ = contact_store
    stream = unique_stream()
    other = EventStore(pool, registry, keyring)  # another process, first to make the key
    async with pool.acquire() as conn:
        _, theirs = await other.keys.for_writing(conn, stream, new_stream=True)
    await store.append(stream, [NewEvent(Contacted(f"k-{stream}", "a@b.c"))], 0)
    assert await key_of(pool, stream) == theirs
    [stored] = await other.read_stream(stream)
    assert stored.payload["email"] == "a@b.c"


async def test_a_first_append_with_personal_data_to_an_erased_stream_is_refused(
    contact_store: tuple[EventStore, Composer], pool: asyncpg.Pool, keyring: KeyRing
) -> None:
    store, _ = contact_store
    stream = unique_stream()
    async with pool.acquire() as conn:
        await EventStore(pool, registry, keyring).erase(conn, stream)
    with pytest.raises(StreamErased):
        await store.append(stream, [NewEvent(Contacted(f"e-{stream}", "a@b.c"))], 0)
    assert await store.read_stream(stream) == []
