"""`replay` and `verify`: read models rebuilt from the log equal the inline ones, and swap in."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings

from events.customer import CustomerCreated, CustomerUpdated, customer_stream
from events.store import EventStore
from events.types import NewEvent
from projections import bulk, inline_projections
from projections.batching import BatchedConnection, literal
from projections.bulk import Parallel
from projections.mirrors import MIRRORS
from projections.rebuild import Rebuild, RebuildBusy
from service import db, keys, maintenance
from service.config import Settings
from service.typedefs import STORE
from tests.histories import EVERY_STEP, append_history, histories


@pytest.fixture
def store(client: TestClient) -> EventStore:
    """The running app's store (inline projections on)."""
    return client.app[STORE]


def rebuild(store: EventStore, database: str, **options: Any) -> Rebuild:
    """A rebuild of the module database's read models."""
    return Rebuild(store, inline_projections, lambda: db.connect(database), **options)


async def tables(conn: asyncpg.Connection) -> dict[str, list[str]]:
    """Every read-model row, as JSON text, in a stable order."""
    return {
        table: [
            r[0] for r in await conn.fetch(f"SELECT to_jsonb(t)::text FROM {table} t ORDER BY 1")
        ]
        for table in inline_projections.tables
    }


async def create_customer(store: EventStore, **conn: Any) -> str:
    """Append a CustomerCreated; returns the reference."""
    ref = f"RV--{uuid.uuid4().hex[:10]}"
    event = CustomerCreated(
        customer_reference=ref,
        email=f"{ref}@example.test",
        salutation="Ms",
        first_name="Ada",
        last_name="O'Hara \\ $1",
        gender="Female",
        date_of_birth="1990-01-31",
        password_hash="$argon2id$fake",
        registration_key_hash=uuid.uuid4().hex * 2,
    )
    await store.append(customer_stream(ref), [NewEvent(event)], 0, {"actor": "system"}, **conn)
    return ref


@hypothesis_settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories)
@example(history=EVERY_STEP)
async def test_a_random_history_projected_inline_equals_its_replay(
    store: EventStore, database: str, conn: asyncpg.Connection, history: list[tuple[Any, ...]]
) -> None:
    await append_history(store, history)
    inline = await tables(conn)

    # verify folds the log through the handlers; replay through the mirrors.
    assert await rebuild(store, database, batch_size=7).verify() == []
    await rebuild(store, database, batch_size=7).replay()
    assert await tables(conn) == inline


def test_every_projector_has_a_current_mirror_for_bulk_replay() -> None:
    # A projector changed without its mirror in projections/mirrors/ (and the
    # fingerprint there): replay still works, through the handlers, but slowly.
    assert bulk.stale(MIRRORS, inline_projections.projectors) == []


async def test_replay_without_mirrors_takes_the_handler_path(
    store: EventStore, database: str, conn: asyncpg.Connection
) -> None:
    await create_customer(store)
    before = await tables(conn)
    job = rebuild(store, database, mirrors={})

    await job.replay()

    assert job.stale == [p.name for p in inline_projections.projectors]
    assert await tables(conn) == before


@pytest.mark.parametrize(
    ("value", "sql_type"),
    [
        (None, "text"),
        (True, "boolean"),
        (-7, "bigint"),
        (0.1, "double precision"),
        ("O'Brien \\ $1; -- é 🎉", "text"),
        (b"\x00\xff'", "bytea"),
        (uuid.UUID("12345678-1234-5678-1234-567812345678"), "uuid"),
        (date(1815, 12, 10), "date"),
        (datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC), "timestamptz"),
        ({"quote": "'", "list": [1, None]}, "jsonb"),
    ],
)
async def test_a_batched_literal_reads_back_as_the_value_it_renders(
    conn: asyncpg.Connection, value: Any, sql_type: str
) -> None:
    await BatchedConnection.prepare_session(conn)

    assert await conn.fetchval(f"SELECT {literal(value)}::{sql_type}") == value


async def test_replay_swaps_in_tables_equal_to_the_inline_ones(
    store: EventStore, database: str, conn: asyncpg.Connection
) -> None:
    await create_customer(store)
    before = await tables(conn)

    projected = await rebuild(store, database, batch_size=3).replay()

    assert projected >= 1
    assert await tables(conn) == before


async def test_replay_in_worker_processes_swaps_in_the_same_tables(
    store: EventStore, database: str, settings: Settings, conn: asyncpg.Connection
) -> None:
    for _ in range(4):
        await create_customer(store)
    before = await tables(conn)
    master = keys.master_key(settings)
    parallel = Parallel(
        2,
        functools.partial(db.connect, database),
        functools.partial(maintenance.decoding_store, master),
    )

    await rebuild(store, database, parallel=parallel).replay()

    assert await tables(conn) == before


async def test_replay_keeps_the_index_and_constraint_names_of_the_schema(
    store: EventStore, database: str, conn: asyncpg.Connection
) -> None:
    query = """SELECT indexrelid::regclass::text FROM pg_index
               WHERE indrelid = ANY($1::regclass[]) ORDER BY 1"""
    names = list(inline_projections.tables)
    before = await conn.fetch(query, names)

    await rebuild(store, database).replay()

    assert await conn.fetch(query, names) == before


async def test_verify_names_a_tampered_row(
    store: EventStore, database: str, conn: asyncpg.Connection
) -> None:
    ref = await create_customer(store)
    await conn.execute(
        "UPDATE customers SET first_name = 'Mallory' WHERE customer_reference = $1", ref
    )
    try:
        found = await rebuild(store, database).verify()
    finally:
        await rebuild(store, database).replay()  # leave the module's read models sound

    assert [t.table for t in found] == ["customers"]
    (difference,) = found[0].shown
    assert difference.key == {"customer_reference": ref}
    assert "first_name live='Mallory' rebuilt='Ada'" in difference.describe()


async def test_verify_names_a_row_missing_from_a_live_table(
    store: EventStore, database: str, conn: asyncpg.Connection
) -> None:
    ref = await create_customer(store)
    await conn.execute("DELETE FROM customer_emails WHERE customer_reference = $1", ref)
    try:
        found = await rebuild(store, database).verify()
    finally:
        await rebuild(store, database).replay()

    assert [(t.table, t.count) for t in found] == [("customer_emails", 1)]
    assert "absent from the live table" in found[0].shown[0].describe()


async def test_verify_command_exits_non_zero_naming_the_difference(
    store: EventStore,
    database: str,
    settings: Settings,
    conn: asyncpg.Connection,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref = await create_customer(store)
    await conn.execute(
        "UPDATE customers SET email = 'x@evil.test' WHERE customer_reference = $1", ref
    )
    try:
        status = await maintenance.rebuild("verify", database, settings)
    finally:
        await rebuild(store, database).replay()

    out = capsys.readouterr()
    assert status == maintenance.DIFFERENT
    assert f"customers [customer_reference={ref}]: email live='x@evil.test'" in out.out
    assert "events/s" in out.err


async def test_verify_command_passes_on_sound_read_models(
    store: EventStore, database: str, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    await create_customer(store)

    assert await maintenance.rebuild("verify", database, settings) == 0
    assert "every read model equals a fresh fold of the log" in capsys.readouterr().err


async def test_replay_command_reports_progress_and_succeeds(
    store: EventStore, database: str, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    await create_customer(store)

    assert await maintenance.rebuild("replay", database, settings, batch_size=2) == 0
    err = capsys.readouterr().err
    assert "events/s" in err and "ETA" in err and "swapped" in err


async def test_a_second_rebuild_at_the_same_time_is_refused(
    store: EventStore, database: str
) -> None:
    holder = await db.connect(database)
    try:
        await holder.execute("SELECT pg_advisory_lock(hashtext('glue-customers-rebuild'))")
        with pytest.raises(RebuildBusy):
            await rebuild(store, database).verify()
    finally:
        await holder.close()


async def test_replay_catches_up_a_write_that_commits_just_before_the_swap(
    store: EventStore, database: str, conn: asyncpg.Connection
) -> None:
    # A writer that has appended but not committed holds the fenced build back;
    # it commits once the build is done, so only the swap's catch-up can see it.
    appended, release = asyncio.Event(), asyncio.Event()

    async def slow_writer() -> str:
        async with store.transaction() as tx:
            ref = await create_customer(store, conn=tx)
            appended.set()
            await release.wait()
        return ref

    def progress(phase: str, done: int, total: int) -> None:
        if phase == "caught up":
            release.set()

    writer = asyncio.create_task(slow_writer())
    await appended.wait()
    await rebuild(store, database, progress=progress).replay()
    ref = await writer

    assert await conn.fetchval("SELECT 1 FROM customers WHERE customer_reference = $1", ref) == 1
    assert await rebuild(store, database).verify() == []


@contextlib.asynccontextmanager
async def writers(store: EventStore, count: int) -> AsyncIterator[list[str]]:
    """`count` tasks creating and updating customers until the block ends."""
    refs: list[str] = []
    stop = asyncio.Event()

    async def write() -> None:
        while not stop.is_set():
            ref = await create_customer(store)
            refs.append(ref)
            update = CustomerUpdated(changed=["first_name"], first_name=f"Ada {len(refs)}")
            await store.append(customer_stream(ref), [NewEvent(update)], 1, {"actor": "system"})

    tasks = [asyncio.create_task(write()) for _ in range(count)]
    try:
        yield refs
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def test_replay_while_writers_append_then_verify_passes(
    store: EventStore, database: str, conn: asyncpg.Connection
) -> None:
    for _ in range(50):
        await create_customer(store)
    async with writers(store, 4) as refs:
        started = len(refs)
        await rebuild(store, database, batch_size=20).replay()
        during = len(refs) - started

    assert during > 0
    live = {r[0] for r in await conn.fetch("SELECT customer_reference FROM customers")}
    assert set(refs) <= live
    assert await rebuild(store, database).verify() == []


async def test_replay_keeps_the_privileges_granted_on_read_models(
    store: EventStore, database: str, conn: asyncpg.Connection
) -> None:
    # Roles are the cluster's, not the database's: a unique one, dropped afterwards.
    role = f"glue_reader_{uuid.uuid4().hex[:12]}"
    await conn.execute(f"CREATE ROLE {role}")
    try:
        await conn.execute(f"GRANT SELECT ON customers TO {role}")
        await conn.execute(f"GRANT SELECT, INSERT ON addresses TO {role} WITH GRANT OPTION")
        query = """SELECT c.relname, a.privilege_type, a.is_grantable
                   FROM pg_class c, aclexplode(c.relacl) a
                   WHERE c.oid = ANY($1::regclass[]) AND a.grantee = $2::regrole
                   ORDER BY 1, 2"""
        names = list(inline_projections.tables)
        before = await conn.fetch(query, names, role)

        await rebuild(store, database).replay()

        after = await conn.fetch(query, names, role)
        assert len(before) == 3
        assert after == before
    finally:
        await conn.execute(f"DROP OWNED BY {role}")
        await conn.execute(f"DROP ROLE {role}")
