"""DELETE /customers/{ref}: anonymisation (crypto-shredding, read models cleared, tokens dead)."""

from __future__ import annotations

import asyncpg
from aiohttp.test_utils import TestClient

from events.store import EventStore
from service.mail.sink import MailSink, links_in
from service.typedefs import STORE
from tests.conftest import (
    Customer,
    add_address,
    bearer,
    confirm,
    login,
    new_customer,
    registration,
    tables_containing,
    token_from_link,
    unique_email,
)

UNAUTHORIZED = {"errors": [{"code": "802", "status": 403, "detail": "Request is unauthorized."}]}
INVALID_TOKEN = {"errors": [{"code": "001", "status": 401, "detail": "Invalid access token."}]}
NOT_FOUND = {"errors": [{"code": "402", "status": 404, "detail": "Customer not found."}]}


async def anonymised(client: TestClient, smtp: MailSink, **overrides: str) -> Customer:
    """A customer who has just deleted themself."""
    c = await new_customer(client, smtp, **overrides)
    resp = await client.delete(f"/customers/{c.reference}", headers=c.headers)
    assert resp.status == 204
    return c


async def test_delete_answers_204_with_an_empty_body(
    client: TestClient, customer: Customer
) -> None:
    resp = await client.delete(f"/customers/{customer.reference}", headers=customer.headers)
    assert resp.status == 204
    assert await resp.read() == b""


async def test_delete_foreign_customer_answers_403_802(
    client: TestClient, smtp: MailSink, customer: Customer
) -> None:
    other = await new_customer(client, smtp)
    resp = await client.delete(f"/customers/{other.reference}", headers=customer.headers)
    assert resp.status == 403
    assert await resp.json() == UNAUTHORIZED
    assert (await client.get(f"/customers/{other.reference}", headers=other.headers)).status == 200


async def test_delete_unknown_customer_answers_403_802(
    client: TestClient, customer: Customer
) -> None:
    resp = await client.delete("/customers/DE--999999999", headers=customer.headers)
    assert resp.status == 403
    assert await resp.json() == UNAUTHORIZED


async def test_old_access_token_answers_401_001(client: TestClient, smtp: MailSink) -> None:
    c = await anonymised(client, smtp)
    resp = await client.get("/customers", headers=c.headers)
    assert resp.status == 401
    assert await resp.json() == INVALID_TOKEN
    assert resp.headers["WWW-Authenticate"] == "Bearer"


async def test_old_credentials_no_longer_log_in(client: TestClient, smtp: MailSink) -> None:
    c = await anonymised(client, smtp)
    resp = await login(client, c.email, c.password)
    assert resp.status == 401
    assert (await resp.json())["errors"][0]["code"] == "003"


async def test_every_refresh_token_is_revoked(
    client: TestClient, smtp: MailSink, conn: asyncpg.Connection
) -> None:
    c = await anonymised(client, smtp)
    live = await conn.fetchval(
        "SELECT count(*) FROM refresh_tokens WHERE customer_reference = $1 AND revoked_at IS NULL",
        c.reference,
    )
    assert live == 0


async def test_old_email_can_register_again(client: TestClient, smtp: MailSink) -> None:
    c = await anonymised(client, smtp)
    resp = await client.post("/customers", json=registration(email=c.email))
    assert resp.status == 201
    assert (await resp.json())["data"]["id"] != c.reference


async def test_re_registered_email_confirms_and_logs_in_as_a_new_customer(
    client: TestClient, smtp: MailSink
) -> None:
    c = await anonymised(client, smtp)
    first_mail = smtp.to(c.email)[0]
    resp = await client.post("/customers", json=registration(email=c.email))
    assert resp.status == 201
    second_mail = await smtp.wait_for(
        lambda m: str(m["To"]).lower() == c.email.lower() and m is not first_mail
    )
    assert await confirm(client, token_from_link(links_in(second_mail)[0])) == 204
    resp = await login(client, c.email, c.password)
    assert resp.status == 201
    token = (await resp.json())["data"]["attributes"]["accessToken"]
    me = await (await client.get("/customers", headers=bearer(token))).json()
    assert [item["id"] for item in me["data"]] != [c.reference]


async def test_old_reference_answers_404_402_to_anyone(client: TestClient, smtp: MailSink) -> None:
    c = await anonymised(client, smtp)
    successor = await new_customer(client, smtp)
    resp = await client.get(f"/customers/{c.reference}", headers=successor.headers)
    assert resp.status == 404
    assert await resp.json() == NOT_FOUND


async def test_read_model_rows_are_gone(
    client: TestClient, smtp: MailSink, conn: asyncpg.Connection
) -> None:
    c = await anonymised(client, smtp)
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM customers WHERE customer_reference = $1", c.reference
        )
        == 0
    )
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM customer_emails WHERE customer_reference = $1 OR email_lower = $2",
            c.reference,
            c.email.lower(),
        )
        == 0
    )


async def test_no_table_holds_the_personal_data_any_more(
    client: TestClient, smtp: MailSink, conn: asyncpg.Connection
) -> None:
    first, last = "Firstname" + unique_email()[5:15], "Lastname" + unique_email()[5:15]
    c = await anonymised(client, smtp, firstName=first, lastName=last)
    for needle in (c.email, first, last):
        assert await tables_containing(conn, needle) == [], needle


async def test_addresses_and_subscriptions_leave_no_trace(
    client: TestClient, smtp: MailSink, conn: asyncpg.Connection
) -> None:
    c = await new_customer(client, smtp)
    street = "Shreddedstrasse " + unique_email()[5:15]
    await add_address(client, c, address1=street)
    resp = await client.post(
        "/availability-notifications",
        json={
            "data": {
                "type": "availability-notifications",
                "attributes": {"email": c.email, "sku": "SKU-" + unique_email()[5:15]},
            }
        },
        headers=c.headers,
    )
    assert resp.status == 201, await resp.text()
    assert await tables_containing(conn, street) == ["addresses"]
    resp = await client.delete(f"/customers/{c.reference}", headers=c.headers)
    assert resp.status == 204
    for needle in (street, c.email):
        assert await tables_containing(conn, needle) == [], needle


async def test_log_events_read_with_personal_fields_erased(
    client: TestClient, smtp: MailSink
) -> None:
    c = await anonymised(client, smtp)
    store: EventStore = client.app[STORE]
    events = await store.read_stream(f"customer-{c.reference}")
    assert [e.event_type for e in events] == [
        "CustomerCreated",
        "CustomerConfirmed",
        "CustomerAnonymized",
    ]
    created = events[0]
    assert created.erased
    for field in ("email", "first_name", "last_name", "salutation", "password_hash"):
        assert created.payload[field] is None
    assert created.payload["customer_reference"] == c.reference


async def test_raw_log_holds_no_plaintext_email_or_names(
    client: TestClient, smtp: MailSink, conn: asyncpg.Connection
) -> None:
    c = await anonymised(client, smtp, firstName="Rawfirstname", lastName="Rawlastname")
    rows = await conn.fetch(
        "SELECT payload::text AS p, metadata::text AS m FROM events WHERE stream_id = $1",
        f"customer-{c.reference}",
    )
    assert rows
    for row in rows:
        for needle in (c.email.lower(), "Rawfirstname", "Rawlastname"):
            assert needle.lower() not in row["p"].lower()
            assert needle.lower() not in row["m"].lower()


async def test_data_key_is_destroyed(
    client: TestClient, smtp: MailSink, conn: asyncpg.Connection
) -> None:
    c = await anonymised(client, smtp)
    row = await conn.fetchrow(
        "SELECT wrapped_key, erased_at FROM data_keys WHERE stream_id = $1",
        f"customer-{c.reference}",
    )
    assert row["wrapped_key"] is None
    assert row["erased_at"] is not None
