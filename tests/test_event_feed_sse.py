"""GET /event-feed with Accept: text/event-stream: live Server-Sent Events (SPEC §9)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from events.customer import CustomerCreated, CustomerUpdated, customer_stream
from events.store import EventStore
from events.types import NewEvent
from service.clock import Clock
from service.config import Settings
from service.typedefs import SETTINGS, STORE, TOKENS
from tests.conftest import Customer, bearer

FEED = "/event-feed"
SSE = {"Accept": "text/event-stream"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Heartbeats every 50 ms, so a test sees one without waiting long."""
    return dataclasses.replace(settings, feed_heartbeat_seconds=0.05)


def reader(client: TestClient) -> dict[str, str]:
    """Authorization of an internal client with events:read."""
    return bearer(client.app[TOKENS].issue_client("feed-reader", ("events:read",)))


async def created(store: EventStore) -> str:
    """Append a CustomerCreated to a new stream; returns the stream id."""
    ref = f"SSE--{uuid.uuid4().hex[:10]}"
    event = CustomerCreated(
        customer_reference=ref,
        email=f"{ref}@example.test",
        salutation="Ms",
        first_name="Ada",
        last_name="Lovelace",
        gender=None,
        date_of_birth=None,
        password_hash="$argon2id$secret",
        registration_key_hash=uuid.uuid4().hex * 2,
    )
    stream = customer_stream(ref)
    await store.append(stream, [NewEvent(event)], 0, {"actor": "system"})
    return stream


async def frames(resp: aiohttp.ClientResponse) -> AsyncIterator[dict[str, str]]:
    """The stream's frames: fields by name, or {"comment": …} for comment lines."""
    frame: dict[str, str] = {}
    while line := (await resp.content.readline()).decode():
        line = line.rstrip("\n")
        if line.startswith(":"):
            yield {"comment": line[1:].strip()}
        elif line:
            name, _, value = line.partition(": ")
            frame[name] = value
        elif frame:
            yield frame
            frame = {}


async def events(resp: aiohttp.ClientResponse, count: int) -> list[dict[str, str]]:
    """The next `count` event frames (heartbeats and the retry hint skipped)."""
    out: list[dict[str, str]] = []
    async for frame in frames(resp):
        if "id" in frame:
            out.append(frame)
            if len(out) == count:
                break
    return out


async def newest_cursor(store: EventStore) -> str | None:
    """The cursor of the newest event readable right now."""
    last, after = None, None
    while batch := await store.read_all(after=after, limit=1000):
        last = batch[-1]
        after = (last.transaction_id, last.position)
    return last.cursor if last else None


async def test_stream_sends_each_event_as_a_frame_with_the_cursor_as_id(
    client: TestClient,
) -> None:
    store = client.app[STORE]
    stream = await created(store)

    resp = await client.get(FEED, params={"filter[stream]": stream}, headers=SSE | reader(client))
    (frame,) = await events(resp, 1)
    resp.close()

    (recorded,) = await store.read_stream(stream)
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    assert frame["id"] == recorded.cursor
    assert frame["event"] == "CustomerCreated"
    data: dict[str, Any] = json.loads(frame["data"])
    assert data["id"] == recorded.cursor
    assert data["attributes"]["stream"] == stream
    assert data["attributes"]["payload"]["first_name"] == "Ada"


async def test_stream_delivers_an_event_committed_after_it_opened(client: TestClient) -> None:
    store = client.app[STORE]
    start = await newest_cursor(store)
    resp = await client.get(
        FEED,
        params={"filter[type]": "CustomerCreated"} | ({"page[after]": start} if start else {}),
        headers=SSE | reader(client),
    )

    stream = await created(store)

    (frame,) = await events(resp, 1)
    resp.close()
    assert json.loads(frame["data"])["attributes"]["stream"] == stream


async def test_stream_resumes_from_last_event_id_across_a_disconnect_without_skip_or_repeat(
    client: TestClient,
) -> None:
    store = client.app[STORE]
    start = await newest_cursor(store)
    params = {"filter[type]": "CustomerCreated", "page[limit]": "3"}
    writers = [asyncio.create_task(_write_many(store, 15)) for _ in range(2)]

    first = await client.get(
        FEED,
        params=params | ({"page[after]": start} if start else {}),
        headers=SSE | reader(client),
    )
    seen = [f["id"] for f in await events(first, 10)]
    first.close()  # disconnect while the writers go on
    await created(store)  # and one more, surely while nobody listens
    second = await client.get(
        FEED, params=params, headers=SSE | reader(client) | {"Last-Event-ID": seen[-1]}
    )
    seen += [f["id"] for f in await events(second, 21)]
    second.close()
    await asyncio.gather(*writers)

    expected = [
        e.cursor
        for e in await store.read_all(after=_cursor(start), limit=1000, types=["CustomerCreated"])
    ]
    assert seen == expected
    assert len(set(seen)) == 31


def _cursor(cursor: str | None) -> tuple[int, int] | None:
    if cursor is None:
        return None
    tx, pos = cursor.split("-")
    return int(tx), int(pos)


async def _write_many(store: EventStore, count: int) -> None:
    for _ in range(count):
        await created(store)


async def test_an_idle_stream_sends_heartbeats(client: TestClient) -> None:
    resp = await client.get(
        FEED, params={"filter[stream]": "customer-nobody"}, headers=SSE | reader(client)
    )

    async for frame in frames(resp):
        if "comment" in frame:
            break
    resp.close()

    assert frame == {"comment": "heartbeat"}


async def test_stream_with_a_customer_token_is_refused_before_streaming(
    client: TestClient, customer: Customer
) -> None:
    resp = await client.get(FEED, headers=SSE | customer.headers)

    assert resp.status == 403
    assert (await resp.json())["errors"][0]["code"] == "802"


async def test_stream_with_a_bad_last_event_id_is_400(client: TestClient) -> None:
    resp = await client.get(FEED, headers=SSE | reader(client) | {"Last-Event-ID": "nope"})

    assert resp.status == 400


@pytest.mark.parametrize("last_event_id", ["99999999999999999999-1", "1-99999999999999999999"])
async def test_stream_with_a_last_event_id_beyond_the_databases_range_is_400_before_streaming(
    client: TestClient, last_event_id: str
) -> None:
    resp = await client.get(FEED, headers=SSE | reader(client) | {"Last-Event-ID": last_event_id})

    assert (resp.status, resp.content_type) == (400, "application/vnd.api+json")
    assert (await resp.json())["errors"][0]["detail"] == "Pagination parameters are invalid."


@pytest.mark.parametrize("name", ["filter[type]", "filter[stream]"])
async def test_stream_with_a_nul_in_a_filter_is_400_before_streaming(
    client: TestClient, name: str
) -> None:
    resp = await client.get(FEED, params={name: "\x00"}, headers=SSE | reader(client))

    assert (resp.status, resp.content_type) == (400, "application/vnd.api+json")
    assert (await resp.json())["errors"][0]["detail"] == (
        "The request holds characters that cannot be stored."
    )


async def _expire_while_streaming(
    client: TestClient, clock: Clock
) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Open a stream of a new customer, let the token expire, then rename the customer:
    (the frame seen before, every frame after it until the stream ended)."""
    store = client.app[STORE]
    stream = await created(store)
    resp = await client.get(FEED, params={"filter[stream]": stream}, headers=SSE | reader(client))
    (before,) = await events(resp, 1)
    clock.advance(timedelta(seconds=client.app[SETTINGS].access_token_ttl + 1))
    renamed = CustomerUpdated(changed=["first_name"], first_name="Grace")
    await store.append(stream, [NewEvent(renamed)], 1, {"actor": "system"})
    async with asyncio.timeout(30):  # the stream ends by itself
        rest = [frame async for frame in frames(resp)]
    return before, rest


async def test_stream_ends_when_its_access_token_expires_and_sends_nothing_after(
    client: TestClient, clock: Clock
) -> None:
    _, rest = await _expire_while_streaming(client, clock)

    assert [f for f in rest if "id" in f] == []
    assert rest[-1] == {"comment": "access token expired"}


async def test_a_fresh_token_resumes_an_expired_stream_without_losing_an_event(
    client: TestClient, clock: Clock
) -> None:
    before, _ = await _expire_while_streaming(client, clock)

    again = await client.get(
        FEED,
        params={"filter[stream]": json.loads(before["data"])["attributes"]["stream"]},
        headers=SSE | reader(client) | {"Last-Event-ID": before["id"]},
    )
    (after,) = await events(again, 1)
    again.close()

    assert after["event"] == "CustomerUpdated"


async def test_a_failure_after_the_stream_began_ends_it_without_a_second_response(
    client: TestClient, conn: asyncpg.Connection
) -> None:
    stream = await created(client.app[STORE])
    resp = await client.get(FEED, params={"filter[stream]": stream}, headers=SSE | reader(client))
    await events(resp, 1)
    # The next read fails: the table is gone while the stream waits.
    await conn.execute("ALTER TABLE events RENAME TO events_away")
    try:
        async with asyncio.timeout(30):  # the stream ends by itself
            rest = await resp.content.read()
    finally:
        await conn.execute("ALTER TABLE events_away RENAME TO events")
    assert b"HTTP/1.1" not in rest
    assert b"errors" not in rest
