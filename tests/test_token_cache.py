"""The token cache (service/auth/tokencache.py): faster, never more permissive."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from datetime import timedelta

from aiohttp import web
from aiohttp.test_utils import TestClient

from service.app import AppOptions, init_app
from service.clock import Clock
from service.config import Settings
from service.typedefs import TOKEN_CACHE
from tests.conftest import Customer, login

NEW_PASSWORD = "changed-Secret-42"


async def _listening(app: web.Application) -> None:
    while not app[TOKEN_CACHE].listening:  # the LISTEN connection is opened in the background
        await asyncio.sleep(0.01)


async def _status(client: TestClient, customer: Customer, token: str) -> int:
    resp = await client.get(
        f"/customers/{customer.reference}", headers={"Authorization": f"Bearer {token}"}
    )
    return resp.status


async def test_a_password_change_in_another_process_ends_the_old_tokens_there(
    client: TestClient,
    app: web.Application,
    customer: Customer,
    settings: Settings,
    app_options: AppOptions,
    aiohttp_client: Callable[[web.Application], Awaitable[TestClient]],
) -> None:
    other = init_app(settings, dataclasses.replace(app_options, run_subscribers=False))
    elsewhere = await aiohttp_client(other)
    await asyncio.wait_for(asyncio.gather(_listening(app), _listening(other)), 10)
    assert await _status(client, customer, customer.access_token) == 200  # now cached here
    change = {
        "data": {
            "type": "customer-password",
            "attributes": {
                "password": customer.password,
                "newPassword": NEW_PASSWORD,
                "confirmPassword": NEW_PASSWORD,
            },
        }
    }
    resp = await elsewhere.patch(
        f"/customer-password/{customer.reference}", json=change, headers=customer.headers
    )
    assert resp.status == 204
    assert await _status(elsewhere, customer, customer.access_token) == 401

    async def refused_here() -> None:
        while await _status(client, customer, customer.access_token) != 401:
            await asyncio.sleep(0.01)

    # Another process hears of it by NOTIFY, a moment after the commit.
    await asyncio.wait_for(refused_here(), 10)
    fresh = await login(client, customer.email, NEW_PASSWORD)
    token = (await fresh.json())["data"]["attributes"]["accessToken"]
    assert await _status(client, customer, token) == 200


async def test_a_cached_token_still_expires(
    client: TestClient, customer: Customer, clock: Clock, settings: Settings
) -> None:
    assert await _status(client, customer, customer.access_token) == 200
    clock.advance(timedelta(seconds=settings.access_token_ttl + 1))
    assert await _status(client, customer, customer.access_token) == 401


async def test_a_cached_token_with_a_forged_signature_is_refused(
    client: TestClient, customer: Customer
) -> None:
    assert await _status(client, customer, customer.access_token) == 200
    head, payload, signature = customer.access_token.split(".")
    forged = f"{head}.{payload}.{signature[::-1]}"
    assert await _status(client, customer, forged) == 401
