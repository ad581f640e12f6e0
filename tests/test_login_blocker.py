"""The login blocker: 10 failures per username or per client address within 10 minutes → 429.

Each test logs in from its own loopback address (127.x.y.z), so the address
counters of different tests never meet.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from service.app import AppOptions, init_app
from service.auth.blocker import subjects
from service.auth.housekeeping import sweep
from service.clock import Clock
from service.config import Settings
from service.typedefs import BLOCKER, METRICS, POOL
from tests.conftest import Customer, login, unique_email

AiohttpClient = Callable[..., Awaitable[TestClient]]
BLOCKED = {
    "code": "4401",
    "status": 429,
    "detail": "Too many log in attempts from your address. Please wait 5 minutes before trying again.",
}
FAILED = {"code": "003", "status": 401, "detail": "Failed to authenticate user."}


def fresh_address() -> str:
    """A loopback address no other test uses (never 127.0.0.1, the shared fixtures' one)."""
    b = uuid.uuid4().bytes
    return f"127.{b[0] % 254 + 1}.{b[1]}.{b[2] % 254 + 1}"


async def client_from(aiohttp_client: AiohttpClient, server: TestServer) -> TestClient:
    """A client whose connections come from a fresh loopback address."""
    connector = aiohttp.TCPConnector(local_addr=(fresh_address(), 0))
    return await aiohttp_client(server, connector=connector)


async def fail_logins(c: TestClient, usernames: list[str]) -> None:
    """One failed login per username, each answered 401 003."""
    for username in usernames:
        resp = await login(c, username, "Wrong-password-1")
        assert resp.status == 401, await resp.text()
        assert (await resp.json())["errors"] == [FAILED]


async def assert_blocked(resp: Any) -> None:
    assert resp.status == 429, await resp.text()
    assert (await resp.json())["errors"] == [BLOCKED]


@pytest.fixture
async def here(aiohttp_client: AiohttpClient, client: TestClient) -> TestClient:
    """The app, seen from this test's own address."""
    return await client_from(aiohttp_client, client.server)


@pytest.fixture
async def elsewhere(aiohttp_client: AiohttpClient, client: TestClient) -> TestClient:
    """The app, seen from a second address."""
    return await client_from(aiohttp_client, client.server)


async def test_the_eleventh_attempt_for_one_username_is_blocked(
    here: TestClient, customer: Customer
) -> None:
    await fail_logins(here, [customer.email] * 10)
    await assert_blocked(await login(here, customer.email, "Wrong-password-1"))


async def test_the_username_counter_blocks_from_any_address(
    here: TestClient, elsewhere: TestClient, customer: Customer
) -> None:
    await fail_logins(here, [customer.email] * 10)
    await assert_blocked(await login(elsewhere, customer.email, customer.password))


async def test_the_eleventh_attempt_from_one_address_is_blocked(
    here: TestClient, elsewhere: TestClient, customer: Customer
) -> None:
    await fail_logins(here, [unique_email("guess") for _ in range(10)])
    await assert_blocked(await login(here, customer.email, customer.password))
    # The username itself is not blocked: from another address it logs in.
    assert (await login(elsewhere, customer.email, customer.password)).status == 201


async def test_nine_failures_do_not_block(here: TestClient, customer: Customer) -> None:
    await fail_logins(here, [customer.email] * 9)
    assert (await login(here, customer.email, customer.password)).status == 201


async def test_a_correct_password_while_blocked_still_gets_429(
    here: TestClient, customer: Customer
) -> None:
    await fail_logins(here, [customer.email] * 10)
    await assert_blocked(await login(here, customer.email, customer.password))


async def test_the_block_lifts_five_minutes_after_the_last_failure(
    here: TestClient, customer: Customer, clock: Clock
) -> None:
    await fail_logins(here, [customer.email] * 10)
    clock.advance(timedelta(minutes=4, seconds=59))
    await assert_blocked(await login(here, customer.email, customer.password))
    clock.advance(timedelta(seconds=2))
    assert (await login(here, customer.email, customer.password)).status == 201


async def test_failures_older_than_ten_minutes_do_not_count(
    here: TestClient, customer: Customer, clock: Clock
) -> None:
    await fail_logins(here, [customer.email] * 9)
    clock.advance(timedelta(minutes=10, seconds=1))
    await fail_logins(here, [customer.email])
    assert (await login(here, customer.email, customer.password)).status == 201


async def test_the_password_grant_is_blocked_too(here: TestClient, customer: Customer) -> None:
    await fail_logins(here, [customer.email] * 10)
    resp = await here.post(
        "/token",
        data={"grant_type": "password", "username": customer.email, "password": customer.password},
    )
    assert resp.status == 429
    assert await resp.json() == {"error": "invalid_grant", "error_description": BLOCKED["detail"]}


async def test_password_grant_failures_count_for_access_tokens(
    here: TestClient, customer: Customer
) -> None:
    form = {"grant_type": "password", "username": customer.email, "password": "Wrong-password-1"}
    for _ in range(10):
        assert (await here.post("/token", data=form)).status == 400
    await assert_blocked(await login(here, customer.email, customer.password))


async def test_blocked_attempts_are_counted_in_the_metrics(
    app: web.Application, here: TestClient, customer: Customer
) -> None:
    registry = app[METRICS].registry
    before = registry.get_sample_value("glue_login_blocked_total") or 0.0
    await fail_logins(here, [customer.email] * 10)
    await assert_blocked(await login(here, customer.email, customer.password))
    assert registry.get_sample_value("glue_login_blocked_total") == before + 1


async def test_the_counters_are_shared_by_every_app_instance(
    aiohttp_client: AiohttpClient,
    here: TestClient,
    settings: Settings,
    app_options: AppOptions,
    customer: Customer,
) -> None:
    # A second service process on the same database (its own pool, blocker and clock).
    second = init_app(
        settings, dataclasses.replace(app_options, clock=Clock(), run_subscribers=False)
    )
    other = await client_from(aiohttp_client, TestServer(second))
    await fail_logins(here, [customer.email] * 5)
    await fail_logins(other, [customer.email] * 5)
    await assert_blocked(await login(here, customer.email, customer.password))
    await assert_blocked(await login(other, customer.email, customer.password))


async def test_the_sweep_forgets_failures_older_than_the_window(
    app: web.Application, here: TestClient, customer: Customer, clock: Clock
) -> None:
    await fail_logins(here, [customer.email] * 3)
    [subject, _] = subjects(customer.email, "")
    pool = app[POOL]
    count = "SELECT count(*) FROM login_failures WHERE subject = $1"
    assert await pool.fetchval(count, subject) == 3
    clock.advance(timedelta(minutes=10, seconds=1))
    await sweep(pool, clock, app[BLOCKER])
    assert await pool.fetchval(count, subject) == 0


async def test_a_username_of_any_length_is_counted_and_refused_with_003(
    here: TestClient,
) -> None:
    await fail_logins(here, ["x" * 100_000 + "@example.com", "a\u0000b@example.com"])


async def test_the_failure_table_holds_no_email_address(
    app: web.Application, here: TestClient, customer: Customer
) -> None:
    await fail_logins(here, [customer.email])
    rows = await app[POOL].fetch("SELECT subject FROM login_failures")
    assert rows
    assert not any(customer.email.lower() in r["subject"].lower() for r in rows)


async def test_a_burst_of_guesses_sent_at_once_gets_no_more_tries_than_one_by_one(
    here: TestClient, customer: Customer
) -> None:
    answers = await asyncio.gather(
        *(login(here, customer.email, f"Wrong-password-{i}") for i in range(25))
    )
    statuses = sorted(r.status for r in answers)
    assert statuses == [401] * 10 + [429] * 15


async def test_a_burst_from_one_address_gets_ten_tries_over_all_usernames(
    here: TestClient,
) -> None:
    answers = await asyncio.gather(
        *(login(here, unique_email("burst"), "Wrong-password-1") for _ in range(25))
    )
    assert sorted(r.status for r in answers) == [401] * 10 + [429] * 15


async def test_a_successful_login_does_not_count_as_a_failure(
    here: TestClient, customer: Customer
) -> None:
    await fail_logins(here, [customer.email] * 9)
    assert (await login(here, customer.email, customer.password)).status == 201
    await fail_logins(here, [customer.email])  # the tenth failure, not the eleventh attempt
    await assert_blocked(await login(here, customer.email, customer.password))


async def change_password(c: TestClient, customer: Customer, current: str) -> Any:
    return await c.patch(
        f"/customer-password/{customer.reference}",
        json={
            "data": {
                "type": "customer-password",
                "attributes": {
                    "password": current,
                    "newPassword": "Changed-Password-1",
                    "confirmPassword": "Changed-Password-1",
                },
            }
        },
        headers=customer.headers,
    )


async def test_ten_wrong_current_passwords_block_the_password_change(
    here: TestClient, customer: Customer
) -> None:
    for _ in range(10):
        assert (await change_password(here, customer, "Wrong-password-1")).status == 400
    await assert_blocked(await change_password(here, customer, customer.password))


async def test_wrong_current_passwords_count_towards_the_login_block(
    here: TestClient, elsewhere: TestClient, customer: Customer
) -> None:
    for _ in range(10):
        assert (await change_password(here, customer, "Wrong-password-1")).status == 400
    await assert_blocked(await login(elsewhere, customer.email, customer.password))
