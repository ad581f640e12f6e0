"""Crypto-shredding: personal fields sealed with a per-stream key; erase() destroys the key."""

from __future__ import annotations

import base64
import json
import os
import uuid

import asyncpg
import pytest

from events.crypto import KeyRing
from events.customer import CustomerCreated, CustomerUpdated, customer_stream, registry
from events.store import EventStore, StreamErased
from events.types import NewEvent
from tests.eventlog import held_transaction

PERSONAL = {
    "email": "ada.lovelace@example.test",
    "salutation": "Ms",
    "first_name": "Augusta Ada",
    "last_name": "Lovelace-Byron",
    "gender": "Female",
    "date_of_birth": "1815-12-10",
    "password_hash": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
}


@pytest.fixture
def master_key() -> bytes:
    """This test's master key."""
    return os.urandom(32)


@pytest.fixture
def store(pool: asyncpg.Pool, master_key: bytes) -> EventStore:
    """A store over the customer events (no inline projections: the log only)."""
    return EventStore(pool, registry, KeyRing(master_key))


def created(reference: str) -> CustomerCreated:
    """A CustomerCreated full of personal data."""
    return CustomerCreated(
        customer_reference=reference,
        registration_key_hash="b" * 64,
        store="DE",
        **PERSONAL,
    )


async def new_customer(store: EventStore) -> str:
    """A customer stream with a CustomerCreated and a CustomerUpdated; returns the stream."""
    reference = f"CS--{uuid.uuid4().hex[:10]}"
    stream = customer_stream(reference)
    update = CustomerUpdated(changed=["last_name"], last_name="King")
    await store.append(stream, [NewEvent(created(reference)), NewEvent(update)], 0)
    return stream


async def raw_payloads(conn: asyncpg.Connection, stream: str) -> list[str]:
    """The stream's payloads exactly as the table holds them."""
    rows = await conn.fetch(
        "SELECT payload::text FROM events WHERE stream_id = $1 ORDER BY version", stream
    )
    return [r[0] for r in rows]


def plaintext_in(texts: list[str]) -> list[str]:
    """Which personal values appear in some raw payloads, in the clear or in the sealed blob.

    The blob is base64 and is decoded first: a short value such as "Ms" would
    otherwise turn up in random base64 text now and then.
    """
    values = [*PERSONAL.values(), "King"]
    found: list[str] = []
    for text in texts:
        payload = json.loads(text)
        sealed = base64.b64decode(payload.pop("$pii", ""))
        clear = json.dumps(payload)
        found += [v for v in values if v in clear or v.encode() in sealed]
    return found


async def test_personal_fields_are_not_stored_in_the_clear(
    store: EventStore, conn: asyncpg.Connection
) -> None:
    stream = await new_customer(store)
    raw = await raw_payloads(conn, stream)
    assert plaintext_in(raw) == []
    stored = json.loads(raw[0])
    assert not set(stored) & set(PERSONAL)
    assert "customer_reference" in stored  # what is not personal stays readable
    assert "$pii" in stored


async def test_personal_fields_read_back_decrypted(store: EventStore) -> None:
    stream = await new_customer(store)
    first, second = await store.read_stream(stream)
    assert not first.erased
    assert {k: first.payload[k] for k in PERSONAL} == PERSONAL
    assert second.payload["last_name"] == "King"


async def test_after_erase_personal_fields_read_as_none_and_the_rest_is_unchanged(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    stream = await new_customer(store)
    before = await store.read_stream(stream)
    async with pool.acquire() as c:
        await store.erase(c, stream)
    after = await store.read_stream(stream)
    assert len(after) == len(before)
    for old, new in zip(before, after, strict=True):
        assert new.erased
        personal = registry.personal_fields(new.event_type)
        assert all(new.payload[k] is None for k in personal)
        assert {k: v for k, v in new.payload.items() if k not in personal} == {
            k: v for k, v in old.payload.items() if k not in personal
        }
        assert (new.event_id, new.version, new.recorded_at) == (
            old.event_id,
            old.version,
            old.recorded_at,
        )


async def test_erase_leaves_the_raw_log_as_it_was_and_destroys_the_key(
    store: EventStore, pool: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    stream = await new_customer(store)
    before = await raw_payloads(conn, stream)
    async with pool.acquire() as c:
        await store.erase(c, stream)
    assert await raw_payloads(conn, stream) == before
    assert plaintext_in(before) == []
    key = await conn.fetchval("SELECT wrapped_key FROM data_keys WHERE stream_id = $1", stream)
    assert key is None


async def test_personal_data_cannot_be_appended_to_an_erased_stream(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    stream = await new_customer(store)
    async with pool.acquire() as c:
        await store.erase(c, stream)
    with pytest.raises(StreamErased):
        await store.append(stream, [NewEvent(CustomerUpdated(changed=["email"], email="x@y.z"))], 2)
    assert len(await store.read_stream(stream)) == 2


async def test_events_without_personal_data_can_still_be_appended_after_erase(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    stream = await new_customer(store)
    async with pool.acquire() as c:
        await store.erase(c, stream)
    await store.append(stream, [NewEvent(CustomerUpdated(changed=[]))], 2)
    assert len(await store.read_stream(stream)) == 3


async def test_an_erase_by_another_process_stops_this_one_sealing_with_its_cached_key(
    store: EventStore, pool: asyncpg.Pool, master_key: bytes
) -> None:
    stream = await new_customer(store)  # this store now holds the stream's key in memory
    other = EventStore(pool, registry, KeyRing(master_key))
    async with pool.acquire() as c:
        await other.erase(c, stream)
    with pytest.raises(StreamErased):
        await store.append(stream, [NewEvent(CustomerUpdated(changed=["email"], email="x@y.z"))], 2)
    assert len(await store.read_stream(stream)) == 2


async def test_a_key_rolled_back_with_its_transaction_is_not_used_again(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    reference = f"CS--{uuid.uuid4().hex[:10]}"
    stream = customer_stream(reference)
    async with held_transaction(pool) as (c, tx):
        await store.append(stream, [NewEvent(created(reference))], 0, conn=c)
        await tx.rollback()  # the stream's first data key goes with it
    await store.append(stream, [NewEvent(created(reference))], 0)
    [event] = await store.read_stream(stream)
    assert event.payload["email"] == PERSONAL["email"]


async def test_a_wrong_master_key_fails_loudly_instead_of_reading_as_erased(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    stream = await new_customer(store)
    stranger = EventStore(pool, registry, KeyRing(os.urandom(32)))
    with pytest.raises(ValueError, match="master key"):
        await stranger.read_stream(stream)
    with pytest.raises(ValueError, match="master key"):
        await stranger.append(
            stream, [NewEvent(CustomerUpdated(changed=["email"], email="x@y.z"))], 2
        )


async def test_a_stream_key_does_not_open_another_streams_fields(
    store: EventStore, conn: asyncpg.Connection, master_key: bytes
) -> None:
    first, second = await new_customer(store), await new_customer(store)
    wrapped = await conn.fetchval("SELECT wrapped_key FROM data_keys WHERE stream_id = $1", first)
    with pytest.raises(ValueError):
        KeyRing(master_key).unwrap(second, wrapped)
