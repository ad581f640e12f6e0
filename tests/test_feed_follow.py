"""`python -m service follow`: the example consumer tails the feed and checkpoints to a file."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from events.customer import CustomerConfirmed, CustomerCreated, customer_stream
from events.store import EventStore
from events.types import NewEvent
from service.config import OAuthClient, Settings
from service.feed_follow import Checkpoint, Follower
from service.typedefs import STORE, TOKENS


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """An internal client allowed to read the feed."""
    client = OAuthClient(id="follower", secret="follower-secret", scopes=("events:read",))
    return dataclasses.replace(settings, oauth_clients=(client,))


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client, as another team's service would use."""
    async with aiohttp.ClientSession() as s:
        yield s


async def stream_with_events(store: EventStore, count: int) -> str:
    """A new customer stream holding CustomerCreated and count-1 CustomerConfirmed."""
    ref = f"FF--{uuid.uuid4().hex[:10]}"
    created = CustomerCreated(
        customer_reference=ref,
        email=f"{ref}@example.test",
        salutation="Mr",
        first_name="Alan",
        last_name="Turing",
        gender=None,
        date_of_birth=None,
        password_hash="$argon2id$secret",
        registration_key_hash=uuid.uuid4().hex * 2,
    )
    stream = customer_stream(ref)
    events = [created] + [CustomerConfirmed(registration_key_hash="k")] * (count - 1)
    for version, event in enumerate(events):
        await store.append(stream, [NewEvent(event)], version)
    return stream


async def follow_until(follower: Follower, session: aiohttp.ClientSession, count: int) -> None:
    """Run the follower until it has handled `count` events, then stop it."""
    handled: list[dict[str, Any]] = []
    enough = asyncio.Event()
    collect = follower.handle

    async def handle(item: dict[str, Any]) -> None:
        await collect(item)
        handled.append(item)
        if len(handled) == count:
            enough.set()

    follower.handle = handle
    task = asyncio.create_task(follower.run(session))
    waiting = asyncio.create_task(enough.wait())
    await asyncio.wait([task, waiting], return_when=asyncio.FIRST_COMPLETED)
    task.cancel()
    waiting.cancel()
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]


def follower(
    client: TestClient, checkpoint: Path, stream: str, seen: list[str], **credentials: str
) -> Follower:
    """A follower of one stream that records the ids it handles."""

    async def handle(item: dict[str, Any]) -> None:
        seen.append(item["id"])

    if not credentials:
        credentials = {"token": client.app[TOKENS].issue_client("follower", ("events:read",))}
    return Follower(
        base_url=str(client.make_url("")).rstrip("/"),
        checkpoint=Checkpoint(checkpoint),
        handle=handle,
        stream=stream,
        **credentials,  # type: ignore[arg-type]
    )


async def test_follower_hands_over_each_event_and_checkpoints_the_last_handled(
    client: TestClient, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    store = client.app[STORE]
    stream = await stream_with_events(store, 3)
    seen: list[str] = []

    await follow_until(follower(client, tmp_path / "cursor", stream, seen), session, 3)

    cursors = [e.cursor for e in await store.read_stream(stream)]
    assert seen == cursors
    assert (tmp_path / "cursor").read_text() == cursors[-1]


async def test_follower_resumes_after_its_checkpoint(
    client: TestClient, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    store = client.app[STORE]
    stream = await stream_with_events(store, 3)
    cursors = [e.cursor for e in await store.read_stream(stream)]
    Checkpoint(tmp_path / "cursor").save(cursors[0])
    seen: list[str] = []

    await follow_until(follower(client, tmp_path / "cursor", stream, seen), session, 2)

    assert seen == cursors[1:]


async def test_follower_gets_its_token_by_client_credentials(
    client: TestClient, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    stream = await stream_with_events(client.app[STORE], 1)
    seen: list[str] = []
    credentials = {"client_id": "follower", "client_secret": "follower-secret"}

    await follow_until(
        follower(client, tmp_path / "cursor", stream, seen, **credentials), session, 1
    )

    assert len(seen) == 1
