"""POST /customer-confirmation: single-use registration keys."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from events.store import EventStore
from service.mail.sink import MailSink
from service.typedefs import STORE
from tests.conftest import confirm, confirmation_key, register, unique_email

INVALID_KEY = {
    "code": "423",
    "status": 422,
    "detail": "This email confirmation code is invalid or has been already used.",
}


def body(attributes: dict[str, Any]) -> dict[str, Any]:
    return {"data": {"type": "customer-confirmation", "attributes": attributes}}


async def registered_key(client: TestClient, smtp: MailSink) -> tuple[str, str]:
    """(reference, mailed key) of a fresh registration."""
    email = unique_email("confirm")
    doc = await register(client, email=email)
    return doc["data"]["id"], await confirmation_key(smtp, email)


async def test_mailed_key_answers_204_with_an_empty_body(
    client: TestClient, smtp: MailSink
) -> None:
    _, key = await registered_key(client, smtp)
    resp = await client.post("/customer-confirmation", json=body({"registrationKey": key}))
    assert resp.status == 204
    assert await resp.read() == b""


async def test_key_works_only_once(client: TestClient, smtp: MailSink) -> None:
    _, key = await registered_key(client, smtp)
    assert await confirm(client, key) == 204
    resp = await client.post("/customer-confirmation", json=body({"registrationKey": key}))
    assert resp.status == 422
    assert await resp.json() == {"errors": [INVALID_KEY]}


async def test_unknown_key_answers_422_423(client: TestClient) -> None:
    resp = await client.post(
        "/customer-confirmation", json=body({"registrationKey": secrets.token_hex(32)})
    )
    assert resp.status == 422
    assert await resp.json() == {"errors": [INVALID_KEY]}


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({"registrationKey": ""}, "This value should not be blank."),
        ({"registrationKey": None}, "This value should not be blank."),
        ({}, "This field is missing."),
    ],
    ids=["blank", "null", "missing"],
)
async def test_blank_or_missing_key_answers_901(
    client: TestClient, attributes: dict[str, Any], message: str
) -> None:
    resp = await client.post("/customer-confirmation", json=body(attributes))
    assert resp.status == 422
    assert await resp.json() == {
        "errors": [{"code": "901", "status": 422, "detail": f"registrationKey => {message}"}]
    }


async def test_two_concurrent_confirmations_of_one_key_succeed_once(
    client: TestClient, smtp: MailSink
) -> None:
    _, key = await registered_key(client, smtp)
    statuses = sorted(await asyncio.gather(confirm(client, key), confirm(client, key)))
    assert statuses == [204, 422]


async def test_confirmation_appends_customer_confirmed_with_the_key_hash_only(
    client: TestClient, smtp: MailSink
) -> None:
    ref, key = await registered_key(client, smtp)
    assert await confirm(client, key) == 204
    store: EventStore = client.app[STORE]
    events = await store.read_stream(f"customer-{ref}")
    assert [e.event_type for e in events] == ["CustomerCreated", "CustomerConfirmed"]
    assert events[1].payload == {"registration_key_hash": hashlib.sha256(key.encode()).hexdigest()}


async def test_confirmation_marks_the_customer_confirmed_and_forgets_the_key(
    client: TestClient, smtp: MailSink, conn: asyncpg.Connection
) -> None:
    ref, key = await registered_key(client, smtp)
    assert await confirm(client, key) == 204
    row = await conn.fetchrow(
        "SELECT confirmed_at, registration_key_hash FROM customers WHERE customer_reference = $1",
        ref,
    )
    assert row["confirmed_at"] is not None
    assert row["registration_key_hash"] is None
