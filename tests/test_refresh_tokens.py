"""/refresh-tokens: rotation, reuse detection, expiry, revocation of one or all, hashed storage."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from service import db
from service.auth import refresh
from service.clock import Clock
from service.config import OAuthClient, Settings
from service.mail.sink import MailSink
from tests.conftest import Customer, bearer, login, new_customer

FAILED_TO_REFRESH = {"code": "004", "status": 401, "detail": "Failed to refresh token."}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """An internal client, to show that client tokens cannot revoke customer tokens."""
    client = OAuthClient(id="feed-reader", secret="reader-secret", scopes=("events:read",))
    return dataclasses.replace(settings, oauth_clients=(client,))


async def refresh_with(client: TestClient, token: str) -> Any:
    """POST /refresh-tokens with a refresh token."""
    return await client.post(
        "/refresh-tokens",
        json={"data": {"type": "refresh-tokens", "attributes": {"refreshToken": token}}},
    )


async def refreshed(client: TestClient, token: str) -> dict[str, Any]:
    """The attributes of a successful refresh."""
    resp = await refresh_with(client, token)
    assert resp.status == 201, await resp.text()
    return (await resp.json())["data"]["attributes"]


async def assert_refresh_fails(client: TestClient, token: str) -> None:
    resp = await refresh_with(client, token)
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    assert (await resp.json())["errors"] == [FAILED_TO_REFRESH]


async def second_login(client: TestClient, customer: Customer) -> str:
    """A refresh token of another session (family) of the same customer."""
    resp = await login(client, customer.email, customer.password)
    assert resp.status == 201
    return (await resp.json())["data"]["attributes"]["refreshToken"]


# ------------------------------------------------------------------ POST


async def test_refresh_answers_a_new_token_pair(client: TestClient, customer: Customer) -> None:
    resp = await refresh_with(client, customer.refresh_token)
    assert resp.status == 201
    doc = await resp.json()
    assert doc["data"]["type"] == "refresh-tokens"
    assert doc["data"]["id"] is None
    assert doc["data"]["links"] == {"self": "http://glue.test/refresh-tokens"}
    attrs = doc["data"]["attributes"]
    assert attrs["tokenType"] == "Bearer"
    assert attrs["expiresIn"] == 28800
    assert attrs["refreshTokenExpiresIn"] == 2592000
    assert attrs["idCompanyUser"] is None
    assert attrs["refreshToken"] != customer.refresh_token
    got = await client.get(f"/customers/{customer.reference}", headers=bearer(attrs["accessToken"]))
    assert got.status == 200


async def test_the_successor_refreshes_again(client: TestClient, customer: Customer) -> None:
    first = await refreshed(client, customer.refresh_token)
    second = await refreshed(client, first["refreshToken"])
    assert second["refreshToken"] not in (first["refreshToken"], customer.refresh_token)


async def test_a_rotated_token_is_refused(client: TestClient, customer: Customer) -> None:
    await refreshed(client, customer.refresh_token)
    await assert_refresh_fails(client, customer.refresh_token)


async def test_reusing_a_rotated_token_revokes_its_successor(
    client: TestClient, customer: Customer
) -> None:
    successor = (await refreshed(client, customer.refresh_token))["refreshToken"]
    await assert_refresh_fails(client, customer.refresh_token)
    await assert_refresh_fails(client, successor)


async def test_reuse_revokes_only_its_own_family(client: TestClient, customer: Customer) -> None:
    other_session = await second_login(client, customer)
    await refreshed(client, customer.refresh_token)
    await assert_refresh_fails(client, customer.refresh_token)
    await refreshed(client, other_session)


async def test_an_unknown_token_is_refused(client: TestClient) -> None:
    await assert_refresh_fails(client, "not-a-token-we-ever-issued")


async def test_an_expired_token_is_refused(
    client: TestClient, customer: Customer, clock: Clock
) -> None:
    clock.advance(timedelta(seconds=2592000, microseconds=1))
    await assert_refresh_fails(client, customer.refresh_token)


async def test_a_token_just_before_expiry_still_refreshes(
    client: TestClient, customer: Customer, clock: Clock
) -> None:
    clock.advance(timedelta(seconds=2592000 - 1))
    await refreshed(client, customer.refresh_token)


async def test_a_missing_refresh_token_is_a_validation_error(client: TestClient) -> None:
    resp = await client.post(
        "/refresh-tokens", json={"data": {"type": "refresh-tokens", "attributes": {}}}
    )
    assert resp.status == 422
    assert (await resp.json())["errors"] == [
        {"code": "901", "status": 422, "detail": "refreshToken => This field is missing."}
    ]


async def test_tokens_are_random_256_bits_and_stored_only_hashed(
    client: TestClient, customer: Customer, conn: asyncpg.Connection
) -> None:
    raw = base64.urlsafe_b64decode(
        customer.refresh_token + "=" * (-len(customer.refresh_token) % 4)
    )
    assert len(raw) >= 32
    row = await conn.fetchrow(
        "SELECT * FROM refresh_tokens WHERE token_hash = $1",
        hashlib.sha256(customer.refresh_token.encode()).digest(),
    )
    assert row is not None
    assert row["customer_reference"] == customer.reference
    assert row["expires_at"] - row["issued_at"] == timedelta(seconds=2592000)
    stored = await conn.fetch("SELECT * FROM refresh_tokens")
    for record in stored:
        assert all(customer.refresh_token not in str(value) for value in record.values())
        assert all(customer.refresh_token.encode() != value for value in record.values())


# ------------------------------------------------------------------ DELETE one


async def test_delete_revokes_the_callers_token(client: TestClient, customer: Customer) -> None:
    resp = await client.delete(
        f"/refresh-tokens/{customer.refresh_token}", headers=customer.headers
    )
    assert resp.status == 204
    assert await resp.read() == b""
    await assert_refresh_fails(client, customer.refresh_token)


async def test_delete_leaves_the_other_sessions_alone(
    client: TestClient, customer: Customer
) -> None:
    other_session = await second_login(client, customer)
    resp = await client.delete(
        f"/refresh-tokens/{customer.refresh_token}", headers=customer.headers
    )
    assert resp.status == 204
    await refreshed(client, other_session)


async def test_delete_of_a_foreign_token_answers_204_and_keeps_it(
    client: TestClient, smtp: MailSink, customer: Customer
) -> None:
    intruder = await new_customer(client, smtp)
    resp = await client.delete(
        f"/refresh-tokens/{customer.refresh_token}", headers=intruder.headers
    )
    assert resp.status == 204
    await refreshed(client, customer.refresh_token)


async def test_delete_of_an_unknown_token_answers_204(
    client: TestClient, customer: Customer
) -> None:
    resp = await client.delete("/refresh-tokens/no-such-token", headers=customer.headers)
    assert resp.status == 204


async def test_delete_needs_an_access_token(client: TestClient, customer: Customer) -> None:
    resp = await client.delete(f"/refresh-tokens/{customer.refresh_token}")
    assert resp.status == 403
    assert (await resp.json())["errors"] == [
        {"code": "002", "status": 403, "detail": "Missing access token."}
    ]
    await refreshed(client, customer.refresh_token)


# ------------------------------------------------------------------ DELETE mine


async def test_delete_mine_revokes_every_token_of_the_caller(
    client: TestClient, customer: Customer
) -> None:
    other_session = await second_login(client, customer)
    resp = await client.delete("/refresh-tokens/mine", headers=customer.headers)
    assert resp.status == 204
    await assert_refresh_fails(client, customer.refresh_token)
    await assert_refresh_fails(client, other_session)


async def test_delete_mine_leaves_other_customers_alone(
    client: TestClient, smtp: MailSink, customer: Customer
) -> None:
    other = await new_customer(client, smtp)
    resp = await client.delete("/refresh-tokens/mine", headers=other.headers)
    assert resp.status == 204
    await refreshed(client, customer.refresh_token)


async def test_delete_mine_needs_an_access_token(client: TestClient) -> None:
    resp = await client.delete("/refresh-tokens/mine")
    assert resp.status == 403
    assert (await resp.json())["errors"] == [
        {"code": "002", "status": 403, "detail": "Missing access token."}
    ]


async def test_delete_mine_needs_a_customer_token(client: TestClient) -> None:
    got = await client.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "feed-reader",
            "client_secret": "reader-secret",
        },
    )
    assert got.status == 200
    resp = await client.delete(
        "/refresh-tokens/mine", headers=bearer((await got.json())["access_token"])
    )
    assert resp.status == 403
    assert (await resp.json())["errors"] == [
        {"code": "802", "status": 403, "detail": "Request is unauthorized."}
    ]


# ------------------------------------------------------------------ clean-up


async def test_purge_removes_expired_tokens_only(database: str) -> None:
    # A pool of its own: a running app's periodic sweep would race the purge under test.
    pool = await db.create_pool(database, min_size=1, max_size=2)
    try:
        now = Clock().now()
        ttl = 60
        owner = f"DE--purge-{uuid.uuid4().hex[:8]}"
        expired = await refresh.issue(pool, owner, now - timedelta(seconds=2 * ttl), ttl)
        live = await refresh.issue(pool, owner, now, ttl)
        assert await refresh.purge_expired(pool, now) >= 1
        left = await pool.fetch(
            "SELECT token_hash FROM refresh_tokens WHERE customer_reference = $1", owner
        )
        assert [r["token_hash"] for r in left] == [refresh.token_hash(live)]
        assert refresh.token_hash(expired) not in [r["token_hash"] for r in left]
    finally:
        await pool.close()


# ------------------------------------------------------------------ races


async def blocked_on_locks(conn: asyncpg.Connection, count: int) -> None:
    """Wait until `count` sessions of this database wait for a row lock."""
    async with asyncio.timeout(10):
        while (
            await conn.fetchval(
                """SELECT count(*) FROM pg_stat_activity
                   WHERE datname = current_database() AND wait_event_type = 'Lock'"""
            )
            < count
        ):
            await asyncio.sleep(0.01)


async def test_a_rotation_racing_a_password_change_leaves_no_live_successor(
    client: TestClient, customer: Customer, database: str
) -> None:
    holder = await db.connect(database)
    waiter = await db.connect(database)
    try:
        # Pin the token's row, so that the rotation is caught in the middle.
        tx = holder.transaction()
        await tx.start()
        await holder.execute(
            "SELECT 1 FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
            refresh.token_hash(customer.refresh_token),
        )
        rotation = asyncio.ensure_future(refresh_with(client, customer.refresh_token))
        await blocked_on_locks(waiter, 1)
        change = asyncio.ensure_future(
            client.patch(
                f"/customer-password/{customer.reference}",
                json={
                    "data": {
                        "type": "customer-password",
                        "attributes": {
                            "password": customer.password,
                            "newPassword": "Changed-Password-1",
                            "confirmPassword": "Changed-Password-1",
                        },
                    }
                },
                headers=customer.headers,
            )
        )
        await blocked_on_locks(waiter, 2)
        await tx.rollback()
        rotated, changed = await asyncio.gather(rotation, change)
    finally:
        await holder.close()
        await waiter.close()
    assert changed.status == 204
    if rotated.status == 201:
        successor = (await rotated.json())["data"]["attributes"]["refreshToken"]
        await assert_refresh_fails(client, successor)
    else:
        assert rotated.status == 401
