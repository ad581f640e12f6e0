"""/availability-notifications, /my-availability-notifications and
/customers/{ref}/availability-notifications (SPEC §7). No product lookup is
configured here: every well-formed SKU is accepted (the lookup: test_product_lookup.py)."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from events.customer import customer_stream, subscription_stream
from service.mail.sink import MailSink
from service.typedefs import STORE
from tests.conftest import Customer, bearer, new_customer, unique_email

KEY = re.compile(r"^[0-9a-f]{32}$")
BASE = "http://glue.test"


def sku() -> str:
    """A SKU no other test uses."""
    return f"SKU-{uuid.uuid4().hex[:12]}"


def subscription_doc(**attributes: Any) -> dict[str, Any]:
    """A POST /availability-notifications document."""
    return {"data": {"type": "availability-notifications", "attributes": attributes}}


async def subscribe(
    client: TestClient,
    email: str | None = None,
    product: str | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Subscribe; returns the 201 document's data."""
    resp = await client.post(
        "/availability-notifications",
        json=subscription_doc(email=email or unique_email(), sku=product or sku()),
        headers=headers,
    )
    assert resp.status == 201, await resp.text()
    return (await resp.json())["data"]


async def expect_error(resp: Any, status: int, code: str | None, detail: str) -> None:
    """Assert the response's last error."""
    assert resp.status == status, await resp.text()
    error = (await resp.json())["errors"][-1]
    assert (error.get("code"), error["detail"]) == (code, detail)


def offsets(links: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Each pagination link as its (page[offset], page[limit])."""
    out = {}
    for name in ("first", "prev", "next", "last"):
        if name in links:
            query = parse_qs(urlsplit(links[name]).query)
            out[name] = (query["page[offset]"][0], query["page[limit]"][0])
    return out


@pytest.fixture
async def other(client: TestClient, smtp: MailSink) -> Customer:
    """A second customer."""
    return await new_customer(client, smtp)


# ------------------------------------------------------------------ POST


async def test_subscribing_without_a_token_answers_201_with_a_32_hex_key(
    client: TestClient,
) -> None:
    email, product = unique_email(), sku()
    resp = await client.post(
        "/availability-notifications", json=subscription_doc(email=email, sku=product)
    )
    assert resp.status == 201
    data = (await resp.json())["data"]
    assert data["type"] == "availability-notifications"
    assert KEY.match(data["id"])
    assert data["attributes"] == {"localeName": "en_US", "email": email, "sku": product}
    assert data["links"]["self"] == f"{BASE}/availability-notifications/{data['id']}"


async def test_locale_name_follows_accept_language(client: TestClient) -> None:
    data = await subscribe(client, headers={"Accept-Language": "de-DE,de;q=0.9"})
    assert data["attributes"]["localeName"] == "de_DE"


async def test_an_unconfigured_language_gets_the_default_locale(client: TestClient) -> None:
    data = await subscribe(client, headers={"Accept-Language": "fr-FR"})
    assert data["attributes"]["localeName"] == "en_US"


async def test_same_email_and_sku_again_is_422_4602(client: TestClient) -> None:
    email, product = unique_email(), sku()
    await subscribe(client, email, product)
    resp = await client.post(
        "/availability-notifications",
        json=subscription_doc(email=email.upper(), sku=product),
    )
    await expect_error(resp, 422, "4602", "Subscription already exists.")


async def test_same_email_for_another_sku_is_a_new_subscription(client: TestClient) -> None:
    email = unique_email()
    first = await subscribe(client, email, sku())
    second = await subscribe(client, email, sku())
    assert first["id"] != second["id"]


async def test_concurrent_duplicates_make_exactly_one_subscription(
    conn: asyncpg.Connection, client: TestClient
) -> None:
    email, product = unique_email(), sku()
    doc = subscription_doc(email=email, sku=product)
    responses = await asyncio.gather(
        *(client.post("/availability-notifications", json=doc) for _ in range(4))
    )
    statuses = sorted(r.status for r in responses)
    assert statuses == [201, 422, 422, 422]
    for resp in responses:
        if resp.status == 422:
            await expect_error(resp, 422, "4602", "Subscription already exists.")
    count = await conn.fetchval(
        "SELECT count(*) FROM availability_subscriptions WHERE email_lower = $1", email.lower()
    )
    assert count == 1


async def test_missing_attributes_are_901_in_attribute_order(client: TestClient) -> None:
    resp = await client.post("/availability-notifications", json=subscription_doc())
    assert resp.status == 422
    assert [(e["code"], e["detail"]) for e in (await resp.json())["errors"]] == [
        ("901", "email => This field is missing."),
        ("901", "sku => This field is missing."),
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("has space", "The value you selected is not a valid choice."),
        ("a/b", "The value you selected is not a valid choice."),
        ("ümlaut", "The value you selected is not a valid choice."),
        ("x" * 65, "This value is too long. It should have 64 characters or less."),
        ("", "This value should not be blank."),
        (None, "This value should not be blank."),
    ],
)
async def test_a_malformed_sku_is_901(client: TestClient, value: Any, message: str) -> None:
    resp = await client.post(
        "/availability-notifications", json=subscription_doc(email=unique_email(), sku=value)
    )
    await expect_error(resp, 422, "901", f"sku => {message}")


async def test_a_sku_of_64_allowed_characters_is_accepted(client: TestClient) -> None:
    product = ("Ab9._-" * 11)[:64]
    data = await subscribe(client, product=product)
    assert data["attributes"]["sku"] == product


async def test_an_invalid_email_is_901_before_the_sku(client: TestClient) -> None:
    resp = await client.post(
        "/availability-notifications", json=subscription_doc(email="nope", sku="a b")
    )
    assert resp.status == 422
    assert [e["detail"] for e in (await resp.json())["errors"]] == [
        "email => This value is not a valid email address.",
        "sku => The value you selected is not a valid choice.",
    ]


async def test_an_invalid_token_is_401_001(client: TestClient) -> None:
    resp = await client.post(
        "/availability-notifications",
        json=subscription_doc(email=unique_email(), sku=sku()),
        headers=bearer("forged"),
    )
    await expect_error(resp, 401, "001", "Invalid access token.")


async def test_a_subscription_made_with_a_token_is_recorded_in_the_customers_stream(
    app: web.Application, client: TestClient, customer: Customer
) -> None:
    data = await subscribe(client, customer.email, headers=customer.headers)
    events = await app[STORE].read_stream(customer_stream(customer.reference))
    subscribed = [e for e in events if e.event_type == "AvailabilityNotificationSubscribed"]
    assert [e.payload["subscription_key"] for e in subscribed] == [data["id"]]
    assert subscribed[0].payload["customer_reference"] == customer.reference


async def test_a_subscription_made_without_a_token_has_its_own_stream(
    app: web.Application, conn: asyncpg.Connection, client: TestClient
) -> None:
    email = unique_email()
    data = await subscribe(client, email)
    stream = subscription_stream(data["id"])
    events = await app[STORE].read_stream(stream)
    assert [(e.event_type, e.payload["email"]) for e in events] == [
        ("AvailabilityNotificationSubscribed", email)
    ]
    raw = await conn.fetchval("SELECT payload::text FROM events WHERE stream_id = $1", stream)
    assert email not in raw


# ------------------------------------------------------------------ DELETE


async def test_unsubscribing_answers_204_and_frees_the_email_and_sku(
    conn: asyncpg.Connection, client: TestClient
) -> None:
    email, product = unique_email(), sku()
    data = await subscribe(client, email, product)
    resp = await client.delete(f"/availability-notifications/{data['id']}")
    assert resp.status == 204
    assert await resp.read() == b""
    gone = await conn.fetchval(
        "SELECT count(*) FROM availability_subscriptions WHERE subscription_key = $1", data["id"]
    )
    assert gone == 0
    again = await subscribe(client, email, product)
    assert again["id"] != data["id"]


async def test_an_unknown_key_is_404_4603(client: TestClient) -> None:
    resp = await client.delete(f"/availability-notifications/{uuid.uuid4().hex}")
    await expect_error(resp, 404, "4603", "Subscription doesn't exist.")


async def test_unsubscribing_twice_is_404_4603(client: TestClient) -> None:
    data = await subscribe(client)
    assert (await client.delete(f"/availability-notifications/{data['id']}")).status == 204
    resp = await client.delete(f"/availability-notifications/{data['id']}")
    await expect_error(resp, 404, "4603", "Subscription doesn't exist.")


async def test_the_key_alone_unsubscribes_a_customers_subscription(
    app: web.Application, client: TestClient, customer: Customer
) -> None:
    data = await subscribe(client, headers=customer.headers)
    resp = await client.delete(f"/availability-notifications/{data['id']}")
    assert resp.status == 204
    events = await app[STORE].read_stream(customer_stream(customer.reference))
    assert events[-1].event_type == "AvailabilityNotificationUnsubscribed"
    assert events[-1].payload["subscription_key"] == data["id"]
    mine = await client.get("/my-availability-notifications", headers=customer.headers)
    assert (await mine.json())["data"] == []


async def test_an_anonymous_unsubscription_is_recorded_in_the_subscription_stream(
    app: web.Application, client: TestClient
) -> None:
    data = await subscribe(client)
    await client.delete(f"/availability-notifications/{data['id']}")
    events = await app[STORE].read_stream(subscription_stream(data["id"]))
    assert [e.event_type for e in events] == [
        "AvailabilityNotificationSubscribed",
        "AvailabilityNotificationUnsubscribed",
    ]


# ------------------------------------------------------------------ GET /my-availability-notifications


async def test_my_subscriptions_are_only_those_made_with_my_token(
    client: TestClient, customer: Customer, other: Customer
) -> None:
    mine = await subscribe(client, customer.email, headers=customer.headers)
    await subscribe(client, other.email, headers=other.headers)
    await subscribe(client, customer.email)  # same email, no token: not the account's
    resp = await client.get("/my-availability-notifications", headers=customer.headers)
    assert resp.status == 200
    doc = await resp.json()
    assert doc["data"] == [mine]


async def test_my_subscriptions_without_a_token_is_403_002(client: TestClient) -> None:
    resp = await client.get("/my-availability-notifications")
    await expect_error(resp, 403, "002", "Missing access token.")


async def test_no_subscriptions_is_an_empty_page_whose_first_and_last_are_offset_0(
    client: TestClient, customer: Customer
) -> None:
    resp = await client.get("/my-availability-notifications", headers=customer.headers)
    doc = await resp.json()
    assert doc["data"] == []
    assert offsets(doc["links"]) == {"first": ("0", "10"), "last": ("0", "10")}


@pytest.fixture
async def five(client: TestClient, customer: Customer) -> list[str]:
    """Five subscriptions of `customer`, oldest first; their keys."""
    return [(await subscribe(client, headers=customer.headers))["id"] for _ in range(5)]


async def page(client: TestClient, customer: Customer, offset: int, limit: int) -> dict[str, Any]:
    """One page of /my-availability-notifications."""
    resp = await client.get(
        "/my-availability-notifications",
        params={"page[offset]": str(offset), "page[limit]": str(limit)},
        headers=customer.headers,
    )
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_first_page_links_to_next_and_last_but_not_prev(
    client: TestClient, customer: Customer, five: list[str]
) -> None:
    doc = await page(client, customer, 0, 2)
    assert [d["id"] for d in doc["data"]] == five[0:2]
    assert offsets(doc["links"]) == {
        "first": ("0", "2"),
        "next": ("2", "2"),
        "last": ("4", "2"),
    }


async def test_middle_page_links_every_way(
    client: TestClient, customer: Customer, five: list[str]
) -> None:
    doc = await page(client, customer, 2, 2)
    assert [d["id"] for d in doc["data"]] == five[2:4]
    assert offsets(doc["links"]) == {
        "first": ("0", "2"),
        "prev": ("0", "2"),
        "next": ("4", "2"),
        "last": ("4", "2"),
    }


async def test_last_page_links_to_prev_but_not_next(
    client: TestClient, customer: Customer, five: list[str]
) -> None:
    doc = await page(client, customer, 4, 2)
    assert [d["id"] for d in doc["data"]] == five[4:]
    assert offsets(doc["links"]) == {"first": ("0", "2"), "prev": ("2", "2"), "last": ("4", "2")}


async def test_a_page_past_the_end_is_empty(
    client: TestClient, customer: Customer, five: list[str]
) -> None:
    doc = await page(client, customer, 10, 2)
    assert doc["data"] == []
    assert offsets(doc["links"])["prev"] == ("8", "2")
    assert "next" not in doc["links"]


async def test_pagination_links_are_absolute_and_keep_other_parameters(
    client: TestClient, customer: Customer, five: list[str]
) -> None:
    resp = await client.get(
        "/my-availability-notifications",
        params={
            "page[offset]": "0",
            "page[limit]": "2",
            "fields[availability-notifications]": "sku",
        },
        headers=customer.headers,
    )
    doc = await resp.json()
    assert doc["links"]["next"].startswith(f"{BASE}/my-availability-notifications?")
    assert parse_qs(urlsplit(doc["links"]["next"]).query)["fields[availability-notifications]"] == [
        "sku"
    ]
    assert all(set(d["attributes"]) == {"sku"} for d in doc["data"])


@pytest.mark.parametrize(
    "params",
    [
        {"page[offset]": "-1"},
        {"page[limit]": "0"},
        {"page[limit]": "501"},
        {"page[limit]": "ten"},
        {"page[offset]": "1.5"},
        # int() would read these; a page number is plain ASCII digits.
        {"page[offset]": "+5"},
        {"page[offset]": " 5"},
        {"page[offset]": "\N{FULLWIDTH DIGIT FIVE}"},
        {"page[offset]": "1_0"},
        {"page[limit]": "+5"},
        {"page[limit]": "5 "},
        {"page[limit]": "\N{ARABIC-INDIC DIGIT FIVE}"},
        {"page[limit]": "1_0"},
    ],
)
async def test_bad_pagination_parameters_are_400(
    client: TestClient, customer: Customer, params: dict[str, str]
) -> None:
    resp = await client.get(
        "/my-availability-notifications", params=params, headers=customer.headers
    )
    await expect_error(resp, 400, None, "Pagination parameters are invalid.")


@pytest.mark.parametrize("offset", ["9223372036854775808", "99999999999999999999999"])
@pytest.mark.parametrize(
    "path", ["/my-availability-notifications", "/customers/{ref}/availability-notifications"]
)
async def test_an_offset_beyond_the_databases_bigint_is_400(
    client: TestClient, customer: Customer, path: str, offset: str
) -> None:
    resp = await client.get(
        path.format(ref=customer.reference),
        params={"page[offset]": offset},
        headers=customer.headers,
    )
    await expect_error(resp, 400, None, "Pagination parameters are invalid.")


# ------------------------------------------------------------------ GET /customers/{ref}/availability-notifications


async def test_a_customers_subscriptions_under_their_reference(
    client: TestClient, customer: Customer
) -> None:
    data = await subscribe(client, headers=customer.headers)
    resp = await client.get(
        f"/customers/{customer.reference}/availability-notifications", headers=customer.headers
    )
    assert resp.status == 200
    assert (await resp.json())["data"] == [data]


async def test_another_customers_subscriptions_are_403_4606(
    client: TestClient, customer: Customer, other: Customer
) -> None:
    resp = await client.get(
        f"/customers/{other.reference}/availability-notifications", headers=customer.headers
    )
    await expect_error(resp, 403, "4606", "Request is unauthorized.")


async def test_an_unknown_reference_is_403_4606(client: TestClient, customer: Customer) -> None:
    resp = await client.get(
        "/customers/DE--999999999/availability-notifications", headers=customer.headers
    )
    await expect_error(resp, 403, "4606", "Request is unauthorized.")


async def test_a_customers_subscriptions_without_a_token_is_403_002(
    client: TestClient, customer: Customer
) -> None:
    resp = await client.get(f"/customers/{customer.reference}/availability-notifications")
    await expect_error(resp, 403, "002", "Missing access token.")


# ------------------------------------------------------------------ anonymisation


async def test_anonymising_removes_the_customers_subscriptions_only(
    conn: asyncpg.Connection, client: TestClient, customer: Customer
) -> None:
    product = sku()
    await subscribe(client, customer.email, sku(), headers=customer.headers)
    anonymous = await subscribe(client, customer.email, product)
    assert (
        await client.delete(f"/customers/{customer.reference}", headers=customer.headers)
    ).status == 204
    theirs = await conn.fetchval(
        "SELECT count(*) FROM availability_subscriptions WHERE customer_reference = $1",
        customer.reference,
    )
    assert theirs == 0
    left = await conn.fetch(
        "SELECT subscription_key FROM availability_subscriptions WHERE email_lower = $1",
        customer.email.lower(),
    )
    assert [r["subscription_key"] for r in left] == [anonymous["id"]]


async def test_an_anonymised_customers_subscription_key_is_unknown_and_email_unreadable(
    app: web.Application, client: TestClient, customer: Customer
) -> None:
    product = sku()
    data = await subscribe(client, customer.email, product, headers=customer.headers)
    await client.delete(f"/customers/{customer.reference}", headers=customer.headers)
    resp = await client.delete(f"/availability-notifications/{data['id']}")
    await expect_error(resp, 404, "4603", "Subscription doesn't exist.")
    events = await app[STORE].read_stream(customer_stream(customer.reference))
    subscribed = [e for e in events if e.event_type == "AvailabilityNotificationSubscribed"]
    assert [(e.erased, e.payload["email"], e.payload["sku"]) for e in subscribed] == [
        (True, None, product)
    ]
    # The email and SKU are free again.
    await subscribe(client, customer.email, product)
