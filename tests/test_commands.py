"""service/commands.py: fold → decide → append, with the per-process state cache."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from events.customer import (
    CustomerAnonymized,
    CustomerConfirmed,
    CustomerCreated,
    CustomerUpdated,
    customer_stream,
)
from events.store import ConcurrencyError, EventStore
from events.types import Event, NewEvent, RecordedEvent
from service.commands import StateCache, execute
from service.domain.customer import CustomerState
from service.domain.errors import CustomerNotFound
from service.typedefs import STORE


@pytest.fixture
def store(client: TestClient) -> EventStore:
    """The running app's store (inline projections on)."""
    return client.app[STORE]


async def created(store: EventStore) -> str:
    """A stream holding one CustomerCreated; returns its id."""
    ref = f"CMD--{uuid.uuid4().hex[:10]}"
    event = CustomerCreated(
        customer_reference=ref,
        email=f"{ref}@example.test",
        salutation="Ms",
        first_name="Ada",
        last_name="Byron",
        gender=None,
        date_of_birth=None,
        password_hash="$argon2id$fake",
        registration_key_hash=uuid.uuid4().hex * 2,
    )
    stream = customer_stream(ref)
    await store.append(stream, [NewEvent(event)], 0, {"actor": "system"})
    return stream


def rename(first_name: str) -> Callable[[CustomerState], Sequence[Event]]:
    """A decision that renames the customer."""

    def decide(state: CustomerState) -> Sequence[Event]:
        return [CustomerUpdated(changed=["first_name"], first_name=first_name)]

    return decide


def nothing(state: CustomerState) -> Sequence[Event]:
    return []


async def test_a_cached_state_still_sees_events_appended_elsewhere(store: EventStore) -> None:
    cache = StateCache()
    stream = await created(store)
    await execute(store, stream, rename("Bea"), {}, cache=cache)
    # Another process (or a path without the cache) appends behind this cache's back.
    outside = CustomerUpdated(changed=["last_name"], last_name="Lovelace")
    await store.append(stream, [NewEvent(outside)], 2, {})
    outcome = await execute(store, stream, nothing, {}, cache=cache)
    assert outcome.state.version == 3
    assert outcome.state.profile["first_name"] == "Bea"
    assert outcome.state.profile["last_name"] == "Lovelace"


async def test_cached_and_uncached_commands_fold_the_same_state(store: EventStore) -> None:
    cache = StateCache()
    stream = await created(store)
    for name in ("Cy", "Di", "Ed"):
        await execute(store, stream, rename(name), {}, cache=cache)
    cached = await execute(store, stream, nothing, {}, cache=cache)
    fresh = await execute(store, stream, nothing, {})
    assert cached.state == fresh.state


async def test_a_rolled_back_command_leaves_no_cached_state(store: EventStore) -> None:
    cache = StateCache()
    stream = await created(store)
    await execute(store, stream, nothing, {}, cache=cache)

    async def fail(conn: object, state: CustomerState) -> None:
        raise RuntimeError("after the append, before commit")

    with pytest.raises(RuntimeError):
        await execute(store, stream, rename("Never"), {}, fail, cache)
    cached = cache.get(stream)
    assert cached is not None and cached.version == 1
    assert cached.profile["first_name"] == "Ada"
    outcome = await execute(store, stream, nothing, {}, cache=cache)
    assert outcome.state.profile["first_name"] == "Ada"


async def test_an_anonymised_customer_is_not_kept_in_the_cache(store: EventStore) -> None:
    cache = StateCache()
    stream = await created(store)
    await execute(store, stream, nothing, {}, cache=cache)
    assert cache.get(stream) is not None
    await execute(store, stream, lambda state: [CustomerAnonymized()], {}, cache=cache)
    assert cache.get(stream) is None


async def test_the_cache_keeps_at_most_its_size() -> None:
    cache = StateCache(size=2)
    for n in range(3):
        cache.put(f"s{n}", CustomerState(version=n + 1))
    assert cache.get("s0") is None
    assert cache.get("s1") is not None and cache.get("s2") is not None


async def test_an_append_without_savepoint_reports_a_lost_race_as_a_conflict(
    store: EventStore,
) -> None:
    stream = await created(store)
    update = CustomerUpdated(changed=["first_name"], first_name="Late")
    with pytest.raises(ConcurrencyError):
        async with store.transaction() as conn:
            await store.append(stream, [NewEvent(update)], 0, {}, conn, savepoint=False)
    assert [e.version for e in await store.read_stream(stream)] == [1]


async def test_racing_commands_all_apply_through_retries(store: EventStore) -> None:
    stream = await created(store)
    names = [f"N{n}" for n in range(6)]
    await asyncio.gather(*(execute(store, stream, rename(n), {}) for n in names))
    events = await store.read_stream(stream)
    assert [e.version for e in events] == list(range(1, 8))
    assert sorted(e.payload["first_name"] for e in events[1:]) == sorted(names)


def rename_if_changed(first_name: str) -> Callable[[CustomerState], Sequence[Event]]:
    """A decision that renames only when the name differs (like PATCH)."""

    def decide(state: CustomerState) -> Sequence[Event]:
        if state.profile.get("first_name") == first_name:
            return []
        return [CustomerUpdated(changed=["first_name"], first_name=first_name)]

    return decide


async def test_a_no_op_on_a_stale_cached_state_is_decided_again_on_the_log(
    store: EventStore,
) -> None:
    cache = StateCache()
    stream = await created(store)
    await execute(store, stream, nothing, {}, cache=cache)  # caches first_name "Ada"
    outside = CustomerUpdated(changed=["first_name"], first_name="Bea")
    await store.append(stream, [NewEvent(outside)], 1, {})
    outcome = await execute(store, stream, rename_if_changed("Ada"), {}, cache=cache)
    assert outcome.state.profile["first_name"] == "Ada"
    assert [e.version for e in outcome.recorded] == [3]


async def test_a_refusal_on_a_stale_cached_state_is_decided_again_on_the_log(
    store: EventStore,
) -> None:
    cache = StateCache()
    stream = await created(store)
    await execute(store, stream, nothing, {}, cache=cache)  # caches "not confirmed"
    await store.append(stream, [NewEvent(CustomerConfirmed(registration_key_hash="x"))], 1, {})

    def only_when_confirmed(state: CustomerState) -> Sequence[Event]:
        if not state.confirmed:
            raise CustomerNotFound()
        return [CustomerUpdated(changed=["last_name"], last_name="Confirmed")]

    outcome = await execute(store, stream, only_when_confirmed, {}, cache=cache)
    assert outcome.state.confirmed and outcome.state.version == 3


async def test_a_stale_cached_state_of_an_erased_customer_is_decided_again_on_the_log(
    store: EventStore,
) -> None:
    cache = StateCache()
    stream = await created(store)
    await execute(store, stream, nothing, {}, cache=cache)  # caches a living customer
    # Anonymised behind this cache's back (another process): event plus shredded key.
    async with store.transaction() as conn:
        await store.append(stream, [NewEvent(CustomerAnonymized())], 1, {}, conn)
        await store.erase(conn, stream)

    def rename_the_living(state: CustomerState) -> Sequence[Event]:
        if not state.exists:
            raise CustomerNotFound()
        return [CustomerUpdated(changed=["first_name"], first_name="Ghost")]

    with pytest.raises(CustomerNotFound):
        await execute(store, stream, rename_the_living, {}, cache=cache)
    assert [e.version for e in await store.read_stream(stream)] == [1, 2]


async def test_a_customer_anonymised_between_the_read_and_the_append_is_decided_again(
    store: EventStore,
) -> None:
    stream = await created(store)
    read = store.read_stream

    async def read_then_anonymise(*args: Any, **kwargs: Any) -> list[RecordedEvent]:
        # Another request's anonymisation commits while this command decides.
        events = await read(*args, **kwargs)
        del store.read_stream  # only the first read
        async with store.transaction() as conn:
            await store.append(stream, [NewEvent(CustomerAnonymized())], 1, {}, conn)
            await store.erase(conn, stream)
        return events

    store.read_stream = read_then_anonymise  # type: ignore[method-assign]

    def rename_the_living(state: CustomerState) -> Sequence[Event]:
        if not state.exists:
            raise CustomerNotFound()
        return [CustomerUpdated(changed=["first_name"], first_name="Ghost")]

    with pytest.raises(CustomerNotFound):
        await execute(store, stream, rename_the_living, {})
    assert [e.version for e in await store.read_stream(stream)] == [1, 2]
