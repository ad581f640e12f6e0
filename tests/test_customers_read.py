"""GET /customers and GET /customers/{ref}: only ever the token's own customer."""

from __future__ import annotations

import re

from aiohttp.test_utils import TestClient

from service.mail.sink import MailSink
from tests.conftest import JSONAPI, Customer, add_address, new_customer

NOT_FOUND = {"errors": [{"code": "402", "status": 404, "detail": "Customer not found."}]}
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}")


async def test_list_holds_exactly_the_token_customer(
    client: TestClient, smtp: MailSink, customer: Customer
) -> None:
    other = await new_customer(client, smtp)
    resp = await client.get("/customers", headers=customer.headers)
    assert resp.status == 200
    assert resp.content_type == JSONAPI
    doc = await resp.json()
    assert [item["id"] for item in doc["data"]] == [customer.reference]
    assert other.reference not in str(doc)
    assert doc["links"] == {"self": "http://glue.test/customers"}


async def test_list_item_is_the_full_customer_resource(
    client: TestClient, customer: Customer
) -> None:
    doc = await (await client.get("/customers", headers=customer.headers)).json()
    item = doc["data"][0]
    assert item["type"] == "customers"
    assert item["links"] == {"self": f"http://glue.test/customers/{customer.reference}"}
    assert item["attributes"]["email"] == customer.email


async def test_get_own_customer_answers_200_with_its_attributes(
    client: TestClient, smtp: MailSink
) -> None:
    c = await new_customer(
        client,
        smtp,
        salutation="Dr",
        firstName="Grace",
        lastName="Hopper",
        gender="Female",
        dateOfBirth="1906-12-09",
    )
    resp = await client.get(f"/customers/{c.reference}", headers=c.headers)
    assert resp.status == 200
    assert resp.content_type == JSONAPI
    data = (await resp.json())["data"]
    assert data["type"] == "customers"
    assert data["id"] == c.reference
    assert data["links"] == {"self": f"http://glue.test/customers/{c.reference}"}
    attrs = data["attributes"]
    assert {k: attrs[k] for k in ("salutation", "firstName", "lastName", "email", "gender")} == {
        "salutation": "Dr",
        "firstName": "Grace",
        "lastName": "Hopper",
        "email": c.email,
        "gender": "Female",
    }
    assert attrs["dateOfBirth"] == "1906-12-09"


async def test_timestamps_are_utc_with_microseconds(client: TestClient, customer: Customer) -> None:
    doc = await (
        await client.get(f"/customers/{customer.reference}", headers=customer.headers)
    ).json()
    attrs = doc["data"]["attributes"]
    assert TIMESTAMP.fullmatch(attrs["createdAt"])
    assert TIMESTAMP.fullmatch(attrs["updatedAt"])


async def test_get_foreign_customer_answers_404_402(
    client: TestClient, smtp: MailSink, customer: Customer
) -> None:
    other = await new_customer(client, smtp)
    resp = await client.get(f"/customers/{other.reference}", headers=customer.headers)
    assert resp.status == 404
    assert await resp.json() == NOT_FOUND


async def test_get_unknown_customer_answers_404_402(client: TestClient, customer: Customer) -> None:
    resp = await client.get("/customers/DE--999999999", headers=customer.headers)
    assert resp.status == 404
    assert await resp.json() == NOT_FOUND


async def test_include_addresses_adds_relationships_and_included(
    client: TestClient, customer: Customer
) -> None:
    address_id = await add_address(client, customer)
    resp = await client.get(
        f"/customers/{customer.reference}?include=addresses", headers=customer.headers
    )
    doc = await resp.json()
    assert doc["data"]["relationships"] == {
        "addresses": {"data": [{"type": "addresses", "id": address_id}]}
    }
    assert [(i["type"], i["id"]) for i in doc["included"]] == [("addresses", address_id)]
    assert doc["included"][0]["attributes"]["city"] == "Berlin"


async def test_include_addresses_without_any_gives_an_empty_relationship(
    client: TestClient, customer: Customer
) -> None:
    resp = await client.get(
        f"/customers/{customer.reference}?include=addresses", headers=customer.headers
    )
    doc = await resp.json()
    assert doc["data"]["relationships"] == {"addresses": {"data": []}}
    assert "included" not in doc


async def test_without_include_there_are_no_relationships(
    client: TestClient, customer: Customer
) -> None:
    doc = await (
        await client.get(f"/customers/{customer.reference}", headers=customer.headers)
    ).json()
    assert "relationships" not in doc["data"]
    assert "included" not in doc


async def test_sparse_fieldset_returns_only_the_named_attributes(
    client: TestClient, customer: Customer
) -> None:
    resp = await client.get(
        f"/customers/{customer.reference}?fields[customers]=email,firstName",
        headers=customer.headers,
    )
    doc = await resp.json()
    assert doc["data"]["attributes"] == {"email": customer.email, "firstName": "John"}
