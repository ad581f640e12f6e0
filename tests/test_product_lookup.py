"""POST /availability-notifications with PRODUCT_LOOKUP_URL set: a small real HTTP
server on loopback plays the product service (200 = exists, 404 = unknown)."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from service.app import AppOptions, init_app
from service.config import Settings
from service.domain.errors import ProductLookupUnavailable
from service.products import ProductLookup
from tests.conftest import unique_email

KNOWN = "KNOWN-1"
BROKEN = "BROKEN-1"  # the product service fails on this one
SLOW = "SLOW-1"  # the product service never answers this one


@dataclasses.dataclass
class ProductService:
    """The stand-in's address and the SKUs it was asked about."""

    server: TestServer
    asked: list[str]
    release: asyncio.Event

    def template(self) -> str:
        """PRODUCT_LOOKUP_URL pointing at it."""
        return f"http://127.0.0.1:{self.server.port}/products/{{sku}}"


@pytest.fixture
async def products() -> AsyncIterator[ProductService]:
    """A real aiohttp server on loopback answering like a product service."""
    asked: list[str] = []
    release = asyncio.Event()

    async def product(request: web.Request) -> web.Response:
        sku = request.match_info["sku"]
        asked.append(sku)
        if sku == KNOWN:
            return web.json_response({"sku": sku})
        if sku == BROKEN:
            return web.json_response({"error": "boom"}, status=503)
        if sku == SLOW:
            await release.wait()  # until teardown: the client's timeout must fire first
        return web.json_response({"error": "not found"}, status=404)

    app = web.Application()
    app.router.add_get("/products/{sku}", product)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield ProductService(server, asked, release)
    release.set()
    await server.close()


@pytest.fixture
def settings(settings: Settings, products: ProductService) -> Settings:
    """The suite's settings with the product lookup pointing at the stand-in."""
    return dataclasses.replace(settings, product_lookup_url=products.template())


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def unreachable_client(
    aiohttp_client: Callable[[web.Application], Awaitable[TestClient]],
    settings: Settings,
    app_options: AppOptions,
) -> TestClient:
    """The app with a product lookup URL where nothing answers."""
    url = f"http://127.0.0.1:{closed_port()}/products/{{sku}}"
    return await aiohttp_client(
        init_app(dataclasses.replace(settings, product_lookup_url=url), app_options)
    )


async def post(client: TestClient, sku: str, email: str | None = None) -> Any:
    """POST /availability-notifications."""
    return await client.post(
        "/availability-notifications",
        json={
            "data": {
                "type": "availability-notifications",
                "attributes": {"email": email or unique_email(), "sku": sku},
            }
        },
    )


async def expect_error(resp: Any, status: int, code: str | None, detail: str) -> None:
    """Assert the response's last error."""
    assert resp.status == status, await resp.text()
    error = (await resp.json())["errors"][-1]
    assert (error.get("code"), error["detail"]) == (code, detail)


async def test_a_sku_the_product_service_knows_is_subscribed(
    client: TestClient, products: ProductService
) -> None:
    resp = await post(client, KNOWN)
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["data"]["attributes"]["sku"] == KNOWN
    assert products.asked == [KNOWN]


async def test_a_sku_the_product_service_does_not_know_is_404_4601(
    client: TestClient, products: ProductService
) -> None:
    unknown = f"UNKNOWN-{uuid.uuid4().hex[:8]}"
    resp = await post(client, unknown)
    await expect_error(resp, 404, "4601", "Product not found.")
    assert products.asked == [unknown]


async def test_a_failing_product_service_is_503(client: TestClient) -> None:
    resp = await post(client, BROKEN)
    await expect_error(resp, 503, None, "Service temporarily unavailable.")


async def test_an_unreachable_product_service_is_503(unreachable_client: TestClient) -> None:
    resp = await post(unreachable_client, KNOWN)
    await expect_error(resp, 503, None, "Service temporarily unavailable.")


async def test_a_malformed_sku_is_901_without_asking_the_product_service(
    client: TestClient, products: ProductService
) -> None:
    resp = await post(client, "no spaces")
    await expect_error(resp, 422, "901", "sku => The value you selected is not a valid choice.")
    assert products.asked == []


async def test_an_unknown_product_records_nothing(
    conn: asyncpg.Connection, client: TestClient
) -> None:
    email = unique_email()
    await expect_error(await post(client, "GONE-1", email), 404, "4601", "Product not found.")
    count = await conn.fetchval(
        "SELECT count(*) FROM availability_subscriptions WHERE email_lower = $1", email
    )
    assert count == 0


async def test_a_product_service_slower_than_the_timeout_is_unavailable(
    products: ProductService,
) -> None:
    # Checked on the lookup itself with a short timeout, so the test does not wait 2 s.
    timeout = aiohttp.ClientTimeout(total=0.2)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        lookup = ProductLookup(products.template(), session)
        with pytest.raises(ProductLookupUnavailable):
            await lookup.require(SLOW)
    assert products.asked == [SLOW]
