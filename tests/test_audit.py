"""GET /audit/customers/{ref}/events and /audit/customers/{ref}?asOf= (SPEC §9)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from events.customer import (
    CustomerAddressAdded,
    CustomerAnonymized,
    CustomerCreated,
    CustomerUpdated,
    customer_stream,
)
from events.store import EventStore
from events.types import Event, NewEvent
from service.mail.sink import MailSink
from service.typedefs import STORE, TOKENS
from tests.conftest import Customer, bearer, login
from tests.test_restore_password import NEW, restore, restore_doc, restore_key

ADDRESS = {
    "salutation": "Mr",
    "firstName": "Max",
    "lastName": "Mustermann",
    "address1": "Unter den Linden",
    "address2": "1",
    "zipCode": "10117",
    "city": "Berlin",
    "iso2Code": "DE",
    "isDefaultShipping": True,
    "isDefaultBilling": True,
}


def auditor(client: TestClient, *scopes: str) -> dict[str, str]:
    """Authorization of an internal client holding `scopes` (audit:read by default)."""
    return bearer(client.app[TOKENS].issue_client("auditor", scopes or ("audit:read",)))


async def history(store: EventStore, *events: Event, erase: bool = False) -> str:
    """A new customer whose stream holds CustomerCreated then `events`; returns the reference."""
    ref = f"AU--{uuid.uuid4().hex[:10]}"
    created = CustomerCreated(
        customer_reference=ref,
        email=f"{ref}@example.test",
        salutation="Ms",
        first_name="Ada",
        last_name="Lovelace",
        gender="Female",
        date_of_birth="1815-12-10",
        password_hash="$argon2id$secret",
        registration_key_hash=uuid.uuid4().hex * 2,
    )
    stream = customer_stream(ref)
    for version, event in enumerate((created, *events)):
        async with store.transaction() as conn:
            await store.append(stream, [NewEvent(event)], version, {"actor": "system"}, conn=conn)
            if erase and isinstance(event, CustomerAnonymized):
                await store.erase(conn, stream)
    return ref


async def stream_of(client: TestClient, ref: str) -> list[dict[str, Any]]:
    """GET /audit/customers/{ref}/events (200): the items."""
    resp = await client.get(f"/audit/customers/{ref}/events", headers=auditor(client))
    assert resp.status == 200, await resp.text()
    return (await resp.json())["data"]


async def as_of(client: TestClient, ref: str, instant: str) -> Any:
    """GET /audit/customers/{ref}?asOf=…; returns the response."""
    return await client.get(
        f"/audit/customers/{ref}", params={"asOf": instant}, headers=auditor(client)
    )


def just_before(recorded_at: str) -> str:
    """An instant one microsecond before a `recordedAt`."""
    instant = datetime.fromisoformat(recorded_at) - timedelta(microseconds=1)
    return instant.isoformat()


async def test_audit_without_a_token_is_403_002(client: TestClient) -> None:
    resp = await client.get("/audit/customers/DE--1/events")

    assert resp.status == 403
    assert (await resp.json())["errors"][0]["code"] == "002"


async def test_audit_with_a_customer_token_is_403_802(
    client: TestClient, customer: Customer
) -> None:
    resp = await client.get(f"/audit/customers/{customer.reference}", headers=customer.headers)

    assert resp.status == 403
    assert (await resp.json())["errors"][0]["code"] == "802"


async def test_audit_with_a_client_lacking_audit_read_is_403_802(client: TestClient) -> None:
    resp = await client.get("/audit/customers/DE--1/events", headers=auditor(client, "events:read"))

    assert resp.status == 403
    assert (await resp.json())["errors"][0]["code"] == "802"


async def test_events_of_an_unknown_customer_are_404_402(client: TestClient) -> None:
    resp = await client.get("/audit/customers/DE--0/events", headers=auditor(client))

    assert resp.status == 404
    assert (await resp.json())["errors"][0]["code"] == "402"


async def test_events_come_in_stream_order_with_who_caused_them(
    client: TestClient, customer: Customer
) -> None:
    resp = await client.patch(
        f"/customers/{customer.reference}",
        json={"data": {"type": "customers", "attributes": {"lastName": "Byron"}}},
        headers=customer.headers | {"X-Request-Id": "req-audit-1", "X-Correlation-Id": "corr-9"},
    )
    assert resp.status == 200

    items = await stream_of(client, customer.reference)

    assert [i["attributes"]["version"] for i in items] == list(range(1, len(items) + 1))
    assert [i["attributes"]["eventType"] for i in items] == [
        "CustomerCreated",
        "CustomerConfirmed",
        "CustomerUpdated",
    ]
    metadata = items[-1]["attributes"]["metadata"]
    assert metadata["actor"] == f"customer:{customer.reference}"
    assert metadata["request_id"] == "req-audit-1"
    assert metadata["causation_id"] == "req-audit-1"
    assert metadata["correlation_id"] == "corr-9"
    assert all(i["attributes"]["metadata"].get("request_id") for i in items)


async def test_a_correlation_id_that_is_no_identifier_is_not_recorded(
    client: TestClient, customer: Customer
) -> None:
    resp = await client.patch(
        f"/customers/{customer.reference}",
        json={
            "data": {"type": "customers", "id": customer.reference, "attributes": {"lastName": "X"}}
        },
        headers=customer.headers
        | {
            "X-Request-Id": "req-audit-2",
            "X-Correlation-Id": "order for Jane Roe, jane@example.com",
        },
    )
    assert resp.status == 200
    metadata = (await stream_of(client, customer.reference))[-1]["attributes"]["metadata"]
    assert metadata["correlation_id"] == "req-audit-2"


async def test_events_of_an_anonymised_customer_read_with_personal_fields_null(
    client: TestClient,
) -> None:
    ref = await history(client.app[STORE], CustomerAnonymized(), erase=True)

    items = await stream_of(client, ref)

    created = items[0]["attributes"]["payload"]
    assert created["email"] is None and created["last_name"] is None
    assert created["customer_reference"] == ref
    assert items[-1]["attributes"]["eventType"] == "CustomerAnonymized"


async def test_as_of_before_creation_is_404_402(client: TestClient) -> None:
    ref = await history(client.app[STORE])
    (created,) = await stream_of(client, ref)

    resp = await as_of(client, ref, just_before(created["attributes"]["recordedAt"]))

    assert resp.status == 404
    assert (await resp.json())["errors"][0]["code"] == "402"


async def test_as_of_between_updates_shows_the_customer_as_it_stood(client: TestClient) -> None:
    ref = await history(
        client.app[STORE],
        CustomerUpdated(changed=["first_name"], first_name="Bea"),
        CustomerUpdated(changed=["first_name"], first_name="Cy"),
    )
    items = await stream_of(client, ref)

    seen = []
    for item in items:
        resp = await as_of(client, ref, item["attributes"]["recordedAt"])
        assert resp.status == 200
        seen.append((await resp.json())["data"]["attributes"]["firstName"])
    resp = await as_of(client, ref, just_before(items[2]["attributes"]["recordedAt"]))

    assert seen == ["Ada", "Bea", "Cy"]
    assert (await resp.json())["data"]["attributes"]["firstName"] == "Bea"


async def test_as_of_includes_the_addresses_of_that_instant(client: TestClient) -> None:
    address_id = str(uuid.uuid4())
    ref = await history(
        client.app[STORE],
        CustomerAddressAdded(
            address_id=address_id,
            salutation="Ms",
            first_name="Ada",
            last_name="Lovelace",
            address1="12 St James's Square",
            zip_code="SW1Y 4JH",
            city="London",
            iso2_code="GB",
            is_default_shipping=True,
            is_default_billing=True,
        ),
    )
    items = await stream_of(client, ref)

    before = await (await as_of(client, ref, items[0]["attributes"]["recordedAt"])).json()
    after = await (await as_of(client, ref, items[1]["attributes"]["recordedAt"])).json()

    assert before["data"]["relationships"]["addresses"]["data"] == []
    assert after["data"]["relationships"]["addresses"]["data"] == [
        {"type": "addresses", "id": address_id}
    ]
    (address,) = after["included"]
    assert address["attributes"]["city"] == "London"
    assert address["attributes"]["country"] == "United Kingdom"
    assert address["attributes"]["isDefaultShipping"] is True


async def test_as_of_after_anonymisation_shows_erased_fields_as_null(client: TestClient) -> None:
    ref = await history(
        client.app[STORE],
        CustomerUpdated(changed=["last_name"], last_name="King"),
        CustomerAnonymized(),
        erase=True,
    )
    items = await stream_of(client, ref)

    during = await (await as_of(client, ref, items[1]["attributes"]["recordedAt"])).json()
    after = await (await as_of(client, ref, items[2]["attributes"]["recordedAt"])).json()

    # Erasure reaches back: the log no longer knows who the customer was, at any instant.
    assert during["data"]["attributes"]["lastName"] is None
    assert during["data"]["attributes"]["isAnonymized"] is False
    assert after["data"]["attributes"]["email"] is None
    assert after["data"]["attributes"]["isAnonymized"] is True
    assert after["data"]["attributes"]["version"] == 3


async def test_as_of_accepts_an_offset_and_a_naive_utc_instant(client: TestClient) -> None:
    ref = await history(client.app[STORE])
    (created,) = await stream_of(client, ref)
    utc = datetime.fromisoformat(created["attributes"]["recordedAt"])
    berlin = (utc + timedelta(hours=1)).isoformat() + "+01:00"

    naive = await as_of(client, ref, created["attributes"]["recordedAt"])
    offset = await as_of(client, ref, berlin)

    assert naive.status == offset.status == 200


async def test_a_bad_as_of_is_400(client: TestClient) -> None:
    ref = await history(client.app[STORE])

    resp = await as_of(client, ref, "yesterday")

    assert resp.status == 400
    assert (await resp.json())["errors"][0]["detail"] == "asOf must be an ISO-8601 date-time."


@pytest.mark.parametrize(
    "instant",
    ["0001-01-01T00:00:00+00:01", "0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"],
)
async def test_an_as_of_whose_utc_instant_lies_outside_years_1_to_9999_is_400(
    client: TestClient, instant: str
) -> None:
    ref = await history(client.app[STORE])

    resp = await as_of(client, ref, instant)

    assert resp.status == 400
    assert (await resp.json())["errors"][0]["detail"] == "asOf must be an ISO-8601 date-time."


async def test_every_command_path_records_its_actor_and_request_id(
    client: TestClient, smtp: MailSink, customer: Customer
) -> None:
    ref = customer.reference
    patched = await client.patch(
        f"/customers/{ref}",
        json={"data": {"type": "customers", "attributes": {"firstName": "Max"}}},
        headers=customer.headers,
    )
    added = await client.post(
        f"/customers/{ref}/addresses",
        json={"data": {"type": "addresses", "attributes": ADDRESS}},
        headers=customer.headers,
    )
    key = await restore_key(client, smtp, customer.email)
    restored = await restore(client, restore_doc(key))
    token = (await (await login(client, customer.email, NEW)).json())["data"]["attributes"]
    deleted = await client.delete(f"/customers/{ref}", headers=bearer(token["accessToken"]))
    assert [r.status for r in (patched, added, restored, deleted)] == [200, 201, 204, 204]

    items = await stream_of(client, ref)

    actors = {i["attributes"]["eventType"]: i["attributes"]["metadata"]["actor"] for i in items}
    assert actors == {
        "CustomerCreated": f"customer:{ref}",  # registering oneself
        "CustomerConfirmed": f"customer:{ref}",  # with the key from one's mailbox
        "CustomerUpdated": f"customer:{ref}",
        "CustomerAddressAdded": f"customer:{ref}",
        "CustomerPasswordResetRequested": "anonymous",  # anyone may ask, knowing the email
        "CustomerPasswordChanged": f"customer:{ref}",
        "CustomerAnonymized": f"customer:{ref}",
    }
    assert all(i["attributes"]["metadata"]["request_id"] for i in items)
