"""GET /event-feed (JSON:API pages): cursors, filters, scopes, erased payloads (SPEC §9)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from yarl import URL

from events.customer import CustomerConfirmed, CustomerCreated, CustomerUpdated, customer_stream
from events.store import EventStore
from events.types import NewEvent
from service.typedefs import STORE, TOKENS
from tests.conftest import Customer, bearer

FEED = "/event-feed"


def reader(client: TestClient, *scopes: str) -> dict[str, str]:
    """Authorization of an internal client holding `scopes` (events:read by default)."""
    token = client.app[TOKENS].issue_client("feed-reader", scopes or ("events:read",))
    return bearer(token)


async def created(store: EventStore, email: str | None = None) -> str:
    """Append a CustomerCreated to a new stream; returns the stream id."""
    ref = f"FD--{uuid.uuid4().hex[:10]}"
    event = CustomerCreated(
        customer_reference=ref,
        email=email or f"{ref}@example.test",
        salutation="Dr",
        first_name="Grace",
        last_name="Hopper",
        gender="Female",
        date_of_birth="1906-12-09",
        password_hash="$argon2id$secret",
        registration_key_hash=uuid.uuid4().hex * 2,
    )
    stream = customer_stream(ref)
    await store.append(stream, [NewEvent(event)], 0, {"actor": "system", "request_id": "r-1"})
    return stream


async def page(client: TestClient, link: str = FEED, **params: str) -> dict[str, Any]:
    """One feed page (200); `link` may be a `links.next` (absolute, on PUBLIC_BASE_URL)."""
    resp = await client.get(URL(link).path_qs, params=params, headers=reader(client))
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def end_cursor(client: TestClient) -> str | None:
    """The cursor of the newest event in the feed right now."""
    last, doc = None, await page(client, **{"page[limit]": "1000"})
    while doc["data"]:
        last = doc["data"][-1]["id"]
        doc = await page(client, **{"page[after]": last, "page[limit]": "1000"})
    return last


async def test_feed_without_a_token_is_403_002(client: TestClient) -> None:
    resp = await client.get(FEED)

    assert resp.status == 403
    assert (await resp.json())["errors"][0]["code"] == "002"


async def test_feed_with_a_customer_token_is_403_802(
    client: TestClient, customer: Customer
) -> None:
    resp = await client.get(FEED, headers=customer.headers)

    assert resp.status == 403
    assert (await resp.json())["errors"][0]["code"] == "802"


async def test_feed_with_a_client_token_without_the_scope_is_403_802(client: TestClient) -> None:
    resp = await client.get(FEED, headers=reader(client, "audit:read"))

    assert resp.status == 403
    assert (await resp.json())["errors"][0]["code"] == "802"


async def test_an_item_carries_the_cursor_and_the_decrypted_event(client: TestClient) -> None:
    stream = await created(client.app[STORE])

    doc = await page(client, **{"filter[stream]": stream})

    (item,) = doc["data"]
    (recorded,) = await client.app[STORE].read_stream(stream)
    assert item["type"] == "events"
    assert item["id"] == recorded.cursor
    attributes = item["attributes"]
    assert attributes["position"] == recorded.position
    assert attributes["stream"] == stream
    assert attributes["version"] == 1
    assert attributes["eventType"] == "CustomerCreated"
    assert attributes["schemaVersion"] == 1
    assert attributes["recordedAt"].startswith(recorded.recorded_at.strftime("%Y-%m-%d %H:%M"))
    assert attributes["payload"]["first_name"] == "Grace"
    assert attributes["payload"]["email"].endswith("@example.test")
    assert attributes["metadata"] == {"actor": "system", "request_id": "r-1"}


async def test_an_item_never_carries_a_password_hash(client: TestClient) -> None:
    stream = await created(client.app[STORE])

    doc = await page(client, **{"filter[stream]": stream})

    assert "password_hash" not in doc["data"][0]["attributes"]["payload"]


async def test_small_pages_following_links_next_equal_one_big_page_while_writers_append(
    client: TestClient,
) -> None:
    store = client.app[STORE]
    start = await end_cursor(client)
    writing = [asyncio.create_task(_write_many(store, 25)) for _ in range(4)]

    seen: list[str] = []
    params = {"page[limit]": "7"} | ({"page[after]": start} if start else {})
    doc = await page(client, **params)
    while True:
        seen += [item["id"] for item in doc["data"]]
        if len(seen) >= 100:  # what the writers write (nobody else writes meanwhile)
            break
        doc = await page(client, doc["links"]["next"])
    await asyncio.gather(*writing)
    assert (await page(client, doc["links"]["next"]))["data"] == []

    big = await page(client, **({"page[after]": start} if start else {}) | {"page[limit]": "1000"})
    assert seen == [item["id"] for item in big["data"]]
    assert len(seen) == len(set(seen)) == 100


async def _write_many(store: EventStore, count: int) -> None:
    for _ in range(count):
        await created(store)


async def test_filter_type_selects_only_the_types_named(client: TestClient) -> None:
    store = client.app[STORE]
    stream = await created(store)
    await store.append(stream, [NewEvent(CustomerConfirmed(registration_key_hash="k"))], 1)
    await store.append(
        stream, [NewEvent(CustomerUpdated(changed=["first_name"], first_name="Ada"))], 2
    )

    doc = await page(
        client,
        **{"filter[stream]": stream, "filter[type]": "CustomerConfirmed,CustomerUpdated"},
    )

    assert [i["attributes"]["eventType"] for i in doc["data"]] == [
        "CustomerConfirmed",
        "CustomerUpdated",
    ]


async def test_filter_stream_selects_one_stream(client: TestClient) -> None:
    store = client.app[STORE]
    one, _ = await created(store), await created(store)

    doc = await page(client, **{"filter[stream]": one})

    assert {i["attributes"]["stream"] for i in doc["data"]} == {one}


async def test_page_limit_defaults_to_100(client: TestClient) -> None:
    for _ in range(3):
        await _write_many(client.app[STORE], 40)

    doc = await page(client)

    assert len(doc["data"]) == 100


async def test_links_next_is_present_on_an_empty_page_and_keeps_the_cursor(
    client: TestClient,
) -> None:
    stream = await created(client.app[STORE])
    (item,) = (await page(client, **{"filter[stream]": stream}))["data"]

    doc = await page(client, **{"filter[stream]": stream, "page[after]": item["id"]})

    assert doc["data"] == []
    assert f"page%5Bafter%5D={item['id']}" in doc["links"]["next"]
    assert "filter%5Bstream%5D=" in doc["links"]["next"]


async def test_bad_page_parameters_are_400(client: TestClient) -> None:
    for params in (
        {"page[limit]": "0"},
        {"page[limit]": "1001"},
        {"page[limit]": "ten"},
        {"page[after]": "not-a-cursor"},
    ):
        resp = await client.get(FEED, params=params, headers=reader(client))
        assert resp.status == 400, params
        assert (await resp.json())["errors"][0]["detail"] == "Pagination parameters are invalid."


@pytest.mark.parametrize(
    "cursor",
    [
        "99999999999999999999-1",
        "1-99999999999999999999",
        "18446744073709551616-1",  # one past xid8
        "1-9223372036854775808",  # one past bigint
    ],
)
async def test_a_cursor_beyond_the_databases_range_is_400(client: TestClient, cursor: str) -> None:
    resp = await client.get(FEED, params={"page[after]": cursor}, headers=reader(client))

    assert resp.status == 400
    assert (await resp.json())["errors"][0]["detail"] == "Pagination parameters are invalid."


@pytest.mark.parametrize(
    "params",
    [
        {"page[after]": "\N{FULLWIDTH DIGIT ONE}-1"},
        {"page[after]": "1-\N{ARABIC-INDIC DIGIT ONE}"},
        {"page[limit]": "+5"},
        {"page[limit]": " 5"},
        {"page[limit]": "\N{FULLWIDTH DIGIT FIVE}"},
        {"page[limit]": "1_0"},
    ],
)
async def test_page_numbers_in_anything_but_ascii_digits_are_400(
    client: TestClient, params: dict[str, str]
) -> None:
    resp = await client.get(FEED, params=params, headers=reader(client))

    assert resp.status == 400
    assert (await resp.json())["errors"][0]["detail"] == "Pagination parameters are invalid."


@pytest.mark.parametrize("types", ["\x00", "CustomerCreated,\x00"])
async def test_a_nul_in_filter_type_is_400(client: TestClient, types: str) -> None:
    resp = await client.get(FEED, params={"filter[type]": types}, headers=reader(client))

    assert resp.status == 400
    assert (await resp.json())["errors"] == [
        {"status": 400, "detail": "The request holds characters that cannot be stored."}
    ]


async def test_personal_fields_read_as_null_after_anonymisation(
    client: TestClient, customer: Customer
) -> None:
    stream = customer_stream(customer.reference)
    resp = await client.delete(f"/customers/{customer.reference}", headers=customer.headers)
    assert resp.status == 204

    doc = await page(client, **{"filter[stream]": stream, "filter[type]": "CustomerCreated"})

    payload = doc["data"][0]["attributes"]["payload"]
    assert payload["email"] is None and payload["first_name"] is None
    assert payload["customer_reference"] == customer.reference


async def test_metadata_names_the_actor_and_the_request(
    client: TestClient, customer: Customer
) -> None:
    resp = await client.patch(
        f"/customers/{customer.reference}",
        json={"data": {"type": "customers", "attributes": {"firstName": "Linus"}}},
        headers=customer.headers | {"X-Request-Id": "req-feed-1"},
    )
    assert resp.status == 200

    doc = await page(
        client,
        **{
            "filter[stream]": customer_stream(customer.reference),
            "filter[type]": "CustomerUpdated",
        },
    )

    metadata = doc["data"][-1]["attributes"]["metadata"]
    assert metadata["actor"] == f"customer:{customer.reference}"
    assert metadata["request_id"] == "req-feed-1"
