"""The whole journey: register, confirm through the mail, log in, read, edit, anonymise."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from service.mail.sink import MailSink
from tests.conftest import bearer, confirm, confirmation_key, login, new_customer, register


async def test_registered_customer_cannot_log_in_until_confirmed(
    client: TestClient, smtp: MailSink
) -> None:
    doc = await register(client, email="Flow.One@example.com")
    assert doc["data"]["id"].startswith("DE--")
    assert (await login(client, "flow.one@example.com")).status == 401
    key = await confirmation_key(smtp, "flow.one@example.com")
    assert await confirm(client, key) == 204
    resp = await login(client, "flow.one@example.com")
    assert resp.status == 201
    token = (await resp.json())["data"]["attributes"]["accessToken"]
    got = await client.get(f"/customers/{doc['data']['id']}", headers=bearer(token))
    assert got.status == 200
    assert (await got.json())["data"]["attributes"]["email"] == "Flow.One@example.com"


async def test_patch_then_delete(client: TestClient, smtp: MailSink) -> None:
    c = await new_customer(client, smtp)
    resp = await client.patch(
        f"/customers/{c.reference}",
        json={"data": {"type": "customers", "attributes": {"firstName": "Jane"}}},
        headers=c.headers,
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["data"]["attributes"]["firstName"] == "Jane"
    resp = await client.delete(f"/customers/{c.reference}", headers=c.headers)
    assert resp.status == 204
    resp = await client.get(f"/customers/{c.reference}", headers=c.headers)
    assert resp.status == 401
