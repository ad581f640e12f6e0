"""/customers/{ref}/addresses: list, read, add, change, remove (SPEC §6)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from events.customer import customer_stream
from service.mail.sink import MailSink
from service.typedefs import STORE
from tests.conftest import Customer, bearer, new_customer

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
BASE = "http://glue.test"


def address_attributes(*without: str, **overrides: Any) -> dict[str, Any]:
    """A valid address, minus the attributes named in `without`, with overrides."""
    attributes: dict[str, Any] = {
        "salutation": "Mr",
        "firstName": "John",
        "lastName": "Doe",
        "address1": "Julie-Wolfthorn-Straße",
        "address2": "1",
        "address3": "Hinterhaus",
        "zipCode": "10115",
        "city": "Berlin",
        "iso2Code": "DE",
        "company": "Spryker",
        "phone": "+49 30 208498350",
        "isDefaultShipping": False,
        "isDefaultBilling": False,
    }
    attributes.update(overrides)
    for name in without:
        attributes.pop(name)
    return attributes


def address_doc(*without: str, **overrides: Any) -> dict[str, Any]:
    """A POST/PATCH document for /addresses."""
    return {"data": {"type": "addresses", "attributes": address_attributes(*without, **overrides)}}


def patch_doc(**attributes: Any) -> dict[str, Any]:
    """A PATCH document carrying only the given attributes."""
    return {"data": {"type": "addresses", "attributes": attributes}}


async def add_address(client: TestClient, customer: Customer, **overrides: Any) -> dict[str, Any]:
    """POST an address; returns the 201 document's data."""
    resp = await client.post(
        f"/customers/{customer.reference}/addresses",
        json=address_doc(**overrides),
        headers=customer.headers,
    )
    assert resp.status == 201, await resp.text()
    return (await resp.json())["data"]


def details(doc: dict[str, Any]) -> list[str]:
    """The `detail` of every error in a document, in order."""
    return [e["detail"] for e in doc["errors"]]


async def expect_error(resp: Any, status: int, code: str | None, detail: str) -> None:
    """Assert a one-error document."""
    assert resp.status == status, await resp.text()
    error = (await resp.json())["errors"][-1]
    assert (error.get("code"), error["detail"]) == (code, detail)


@pytest.fixture
async def other(client: TestClient, smtp: MailSink) -> Customer:
    """A second customer, for foreign references and foreign addresses."""
    return await new_customer(client, smtp)


# ------------------------------------------------------------------ POST


async def test_post_answers_201_with_the_address_and_its_self_link(
    client: TestClient, customer: Customer
) -> None:
    resp = await client.post(
        f"/customers/{customer.reference}/addresses", json=address_doc(), headers=customer.headers
    )
    assert resp.status == 201
    data = (await resp.json())["data"]
    assert data["type"] == "addresses"
    assert UUID.match(data["id"])
    assert data["links"]["self"] == f"{BASE}/customers/{customer.reference}/addresses/{data['id']}"
    assert data["attributes"] == {
        **address_attributes(isDefaultShipping=True, isDefaultBilling=True),
        "country": "Germany",
    }


async def test_post_ignores_a_country_sent_by_the_client(
    client: TestClient, customer: Customer
) -> None:
    data = await add_address(client, customer, country="France", iso2Code="AT")
    assert data["attributes"]["country"] == "Austria"


async def test_post_without_attributes_lists_every_required_one_in_attribute_order(
    client: TestClient, customer: Customer
) -> None:
    resp = await client.post(
        f"/customers/{customer.reference}/addresses",
        json={"data": {"type": "addresses", "attributes": {}}},
        headers=customer.headers,
    )
    assert resp.status == 422
    doc = await resp.json()
    assert {e["code"] for e in doc["errors"]} == {"901"}
    assert details(doc) == [
        f"{name} => This field is missing."
        for name in (
            "salutation",
            "firstName",
            "lastName",
            "address1",
            "address2",
            "zipCode",
            "city",
            "iso2Code",
            "isDefaultShipping",
            "isDefaultBilling",
        )
    ]


async def test_post_lists_invalid_values_in_attribute_order(
    client: TestClient, customer: Customer
) -> None:
    resp = await client.post(
        f"/customers/{customer.reference}/addresses",
        json=address_doc(
            "address2",
            salutation="Sir",
            firstName="",
            zipCode="1" * 16,
            city="Ul",
            iso2Code="XX",
            isDefaultBilling="yes",
        ),
        headers=customer.headers,
    )
    assert resp.status == 422
    assert details(await resp.json()) == [
        "salutation => The value you selected is not a valid choice.",
        "firstName => This value should not be blank.",
        "address2 => This field is missing.",
        "zipCode => This value is too long. It should have 15 characters or less.",
        "city => This value is too short. It should have 3 characters or more.",
        "iso2Code => The value you selected is not a valid choice.",
        "isDefaultBilling => This value should be of type bool.",
    ]


@pytest.mark.parametrize("code", ["XX", "DEU", "D1", "ÄÖ", "276"])
async def test_iso2code_must_be_an_iso_3166_alpha_2_code(
    client: TestClient, customer: Customer, code: str
) -> None:
    resp = await client.post(
        f"/customers/{customer.reference}/addresses",
        json=address_doc(iso2Code=code),
        headers=customer.headers,
    )
    await expect_error(
        resp, 422, "901", "iso2Code => The value you selected is not a valid choice."
    )


async def test_iso2code_in_lower_case_is_stored_in_upper_case(
    client: TestClient, customer: Customer
) -> None:
    data = await add_address(client, customer, iso2Code="nl")
    assert (data["attributes"]["iso2Code"], data["attributes"]["country"]) == ("NL", "Netherlands")


async def test_zip_code_of_15_and_city_of_3_characters_are_accepted(
    client: TestClient, customer: Customer
) -> None:
    data = await add_address(client, customer, zipCode="1" * 15, city="Ulm")
    assert (data["attributes"]["zipCode"], data["attributes"]["city"]) == ("1" * 15, "Ulm")


async def test_blank_or_missing_optional_lines_read_as_null(
    client: TestClient, customer: Customer
) -> None:
    resp = await client.post(
        f"/customers/{customer.reference}/addresses",
        json=address_doc("phone", address3="  ", company=None),
        headers=customer.headers,
    )
    assert resp.status == 201
    attributes = (await resp.json())["data"]["attributes"]
    assert (attributes["address3"], attributes["company"], attributes["phone"]) == (
        None,
        None,
        None,
    )


async def test_post_to_a_foreign_reference_is_403_802(
    client: TestClient, customer: Customer, other: Customer
) -> None:
    resp = await client.post(
        f"/customers/{other.reference}/addresses", json=address_doc(), headers=customer.headers
    )
    await expect_error(resp, 403, "802", "Request is unauthorized.")


async def test_post_to_an_unknown_reference_is_403_802(
    client: TestClient, customer: Customer
) -> None:
    resp = await client.post(
        "/customers/DE--999999999/addresses", json=address_doc(), headers=customer.headers
    )
    await expect_error(resp, 403, "802", "Request is unauthorized.")


async def test_invalid_attributes_win_over_a_foreign_reference(
    client: TestClient, customer: Customer, other: Customer
) -> None:
    resp = await client.post(
        f"/customers/{other.reference}/addresses",
        json=address_doc(city="Ul"),
        headers=customer.headers,
    )
    await expect_error(
        resp, 422, "901", "city => This value is too short. It should have 3 characters or more."
    )


async def test_post_without_a_token_is_403_002(client: TestClient, customer: Customer) -> None:
    resp = await client.post(f"/customers/{customer.reference}/addresses", json=address_doc())
    await expect_error(resp, 403, "002", "Missing access token.")


async def test_post_with_an_invalid_token_is_401_001(
    client: TestClient, customer: Customer
) -> None:
    resp = await client.post(
        f"/customers/{customer.reference}/addresses",
        json=address_doc(),
        headers=bearer("not.a.token"),
    )
    await expect_error(resp, 401, "001", "Invalid access token.")


async def test_post_with_another_resource_type_is_400_invalid_type(
    client: TestClient, customer: Customer
) -> None:
    resp = await client.post(
        f"/customers/{customer.reference}/addresses",
        json={"data": {"type": "customers", "attributes": address_attributes()}},
        headers=customer.headers,
    )
    await expect_error(resp, 400, None, "Invalid type.")


async def test_address_lines_are_stored_encrypted_in_the_log(
    conn: asyncpg.Connection, client: TestClient, customer: Customer
) -> None:
    await add_address(client, customer, city="Quedlinburg")
    payloads = await conn.fetch(
        "SELECT payload::text AS p FROM events WHERE stream_id = $1 AND event_type = $2",
        customer_stream(customer.reference),
        "CustomerAddressAdded",
    )
    assert payloads
    assert all("Quedlinburg" not in row["p"] for row in payloads)


# ------------------------------------------------------------------ GET


async def test_list_holds_every_address_of_the_customer_with_self_links(
    client: TestClient, customer: Customer, other: Customer
) -> None:
    first = await add_address(client, customer, city="Hamburg")
    second = await add_address(client, customer, city="München")
    await add_address(client, other, city="Köln")
    resp = await client.get(f"/customers/{customer.reference}/addresses", headers=customer.headers)
    assert resp.status == 200
    doc = await resp.json()
    assert [a["id"] for a in doc["data"]] == [first["id"], second["id"]]
    assert [a["attributes"]["city"] for a in doc["data"]] == ["Hamburg", "München"]
    assert doc["data"][1]["links"]["self"] == (
        f"{BASE}/customers/{customer.reference}/addresses/{second['id']}"
    )
    assert doc["links"]["self"] == f"{BASE}/customers/{customer.reference}/addresses"


async def test_list_of_an_empty_book_has_empty_data(client: TestClient, customer: Customer) -> None:
    resp = await client.get(f"/customers/{customer.reference}/addresses", headers=customer.headers)
    assert resp.status == 200
    assert (await resp.json())["data"] == []


async def test_list_of_a_foreign_reference_is_403_802(
    client: TestClient, customer: Customer, other: Customer
) -> None:
    resp = await client.get(f"/customers/{other.reference}/addresses", headers=customer.headers)
    await expect_error(resp, 403, "802", "Request is unauthorized.")


async def test_get_one_answers_the_address(client: TestClient, customer: Customer) -> None:
    added = await add_address(client, customer)
    resp = await client.get(
        f"/customers/{customer.reference}/addresses/{added['id']}", headers=customer.headers
    )
    assert resp.status == 200
    assert (await resp.json())["data"] == added


async def test_get_an_unknown_address_is_404_404(client: TestClient, customer: Customer) -> None:
    resp = await client.get(
        f"/customers/{customer.reference}/addresses/{uuid.uuid4()}", headers=customer.headers
    )
    await expect_error(resp, 404, "404", "Address was not found.")


@pytest.mark.parametrize(
    "address_id", ["not-a-uuid", "1234", f"{{{uuid.UUID(int=1)}}}", uuid.UUID(int=1).hex]
)
async def test_an_id_that_is_not_a_uuid_is_404_404(
    client: TestClient, customer: Customer, address_id: str
) -> None:
    resp = await client.get(
        f"/customers/{customer.reference}/addresses/{address_id}", headers=customer.headers
    )
    await expect_error(resp, 404, "404", "Address was not found.")


async def test_another_customers_address_is_404_404(
    client: TestClient, customer: Customer, other: Customer
) -> None:
    foreign = await add_address(client, other)
    resp = await client.get(
        f"/customers/{customer.reference}/addresses/{foreign['id']}", headers=customer.headers
    )
    await expect_error(resp, 404, "404", "Address was not found.")


async def test_get_one_under_a_foreign_reference_is_403_802(
    client: TestClient, customer: Customer, other: Customer
) -> None:
    foreign = await add_address(client, other)
    resp = await client.get(
        f"/customers/{other.reference}/addresses/{foreign['id']}", headers=customer.headers
    )
    await expect_error(resp, 403, "802", "Request is unauthorized.")


# ------------------------------------------------------------------ PATCH


async def test_patch_changes_only_the_attributes_sent(
    client: TestClient, customer: Customer
) -> None:
    added = await add_address(client, customer)
    resp = await client.patch(
        f"/customers/{customer.reference}/addresses/{added['id']}",
        json=patch_doc(city="Potsdam", company=None),
        headers=customer.headers,
    )
    assert resp.status == 200, await resp.text()
    data = (await resp.json())["data"]
    assert data["attributes"] == {**added["attributes"], "city": "Potsdam", "company": None}
    assert data["id"] == added["id"]


async def test_patch_of_iso2code_changes_the_country(
    client: TestClient, customer: Customer
) -> None:
    added = await add_address(client, customer)
    resp = await client.patch(
        f"/customers/{customer.reference}/addresses/{added['id']}",
        json=patch_doc(iso2Code="CH", country="Germany"),
        headers=customer.headers,
    )
    attributes = (await resp.json())["data"]["attributes"]
    assert (attributes["iso2Code"], attributes["country"]) == ("CH", "Switzerland")


async def test_patch_validates_the_attributes_present_in_attribute_order(
    client: TestClient, customer: Customer
) -> None:
    added = await add_address(client, customer)
    resp = await client.patch(
        f"/customers/{customer.reference}/addresses/{added['id']}",
        json=patch_doc(isDefaultShipping=1, iso2Code="ZZ", lastName=None),
        headers=customer.headers,
    )
    assert resp.status == 422
    assert details(await resp.json()) == [
        "lastName => This value should not be blank.",
        "iso2Code => The value you selected is not a valid choice.",
        "isDefaultShipping => This value should be of type bool.",
    ]


async def test_patch_of_an_unknown_address_is_404_404(
    client: TestClient, customer: Customer
) -> None:
    resp = await client.patch(
        f"/customers/{customer.reference}/addresses/{uuid.uuid4()}",
        json=patch_doc(city="Potsdam"),
        headers=customer.headers,
    )
    await expect_error(resp, 404, "404", "Address was not found.")


async def test_patch_of_a_non_uuid_id_is_404_404(client: TestClient, customer: Customer) -> None:
    resp = await client.patch(
        f"/customers/{customer.reference}/addresses/nope",
        json=patch_doc(city="Potsdam"),
        headers=customer.headers,
    )
    await expect_error(resp, 404, "404", "Address was not found.")


async def test_patch_of_another_customers_address_is_404_and_leaves_it(
    client: TestClient, customer: Customer, other: Customer
) -> None:
    foreign = await add_address(client, other, city="Bremen")
    resp = await client.patch(
        f"/customers/{customer.reference}/addresses/{foreign['id']}",
        json=patch_doc(city="Potsdam"),
        headers=customer.headers,
    )
    await expect_error(resp, 404, "404", "Address was not found.")
    mine = await client.get(
        f"/customers/{other.reference}/addresses/{foreign['id']}", headers=other.headers
    )
    assert (await mine.json())["data"]["attributes"]["city"] == "Bremen"


async def test_patch_under_a_foreign_reference_is_403_802(
    client: TestClient, customer: Customer, other: Customer
) -> None:
    foreign = await add_address(client, other)
    resp = await client.patch(
        f"/customers/{other.reference}/addresses/{foreign['id']}",
        json=patch_doc(city="Potsdam"),
        headers=customer.headers,
    )
    await expect_error(resp, 403, "802", "Request is unauthorized.")


async def test_patch_without_an_address_id_is_not_a_route(
    client: TestClient, customer: Customer
) -> None:
    resp = await client.patch(
        f"/customers/{customer.reference}/addresses",
        json=patch_doc(city="Potsdam"),
        headers=customer.headers,
    )
    await expect_error(resp, 404, None, "Not Found")


async def test_patch_that_changes_nothing_records_nothing(
    conn: asyncpg.Connection, client: TestClient, customer: Customer
) -> None:
    added = await add_address(client, customer)
    stream = customer_stream(customer.reference)
    before = await conn.fetchval("SELECT max(version) FROM events WHERE stream_id = $1", stream)
    resp = await client.patch(
        f"/customers/{customer.reference}/addresses/{added['id']}",
        json=patch_doc(city=added["attributes"]["city"], isDefaultShipping=True),
        headers=customer.headers,
    )
    assert resp.status == 200
    after = await conn.fetchval("SELECT max(version) FROM events WHERE stream_id = $1", stream)
    assert after == before


# ------------------------------------------------------------------ DELETE


async def test_delete_answers_204_and_the_address_is_gone(
    client: TestClient, customer: Customer
) -> None:
    added = await add_address(client, customer)
    path = f"/customers/{customer.reference}/addresses/{added['id']}"
    resp = await client.delete(path, headers=customer.headers)
    assert resp.status == 204
    assert await resp.read() == b""
    await expect_error(
        await client.get(path, headers=customer.headers), 404, "404", "Address was not found."
    )


async def test_delete_twice_is_404_404(client: TestClient, customer: Customer) -> None:
    added = await add_address(client, customer)
    path = f"/customers/{customer.reference}/addresses/{added['id']}"
    assert (await client.delete(path, headers=customer.headers)).status == 204
    resp = await client.delete(path, headers=customer.headers)
    await expect_error(resp, 404, "404", "Address was not found.")


async def test_delete_of_another_customers_address_is_404_404(
    client: TestClient, customer: Customer, other: Customer
) -> None:
    foreign = await add_address(client, other)
    resp = await client.delete(
        f"/customers/{customer.reference}/addresses/{foreign['id']}", headers=customer.headers
    )
    await expect_error(resp, 404, "404", "Address was not found.")


async def test_delete_under_a_foreign_reference_is_403_802(
    client: TestClient, customer: Customer, other: Customer
) -> None:
    foreign = await add_address(client, other)
    resp = await client.delete(
        f"/customers/{other.reference}/addresses/{foreign['id']}", headers=customer.headers
    )
    await expect_error(resp, 403, "802", "Request is unauthorized.")


async def test_delete_of_a_non_uuid_id_is_404_404(client: TestClient, customer: Customer) -> None:
    resp = await client.delete(
        f"/customers/{customer.reference}/addresses/12", headers=customer.headers
    )
    await expect_error(resp, 404, "404", "Address was not found.")


# ------------------------------------------------------------------ include=addresses


async def test_customer_with_include_addresses_has_relationships_and_included(
    client: TestClient, customer: Customer
) -> None:
    first = await add_address(client, customer)
    second = await add_address(client, customer, city="Dresden")
    resp = await client.get(
        f"/customers/{customer.reference}?include=addresses", headers=customer.headers
    )
    assert resp.status == 200
    doc = await resp.json()
    assert doc["data"]["relationships"] == {
        "addresses": {
            "data": [
                {"type": "addresses", "id": first["id"]},
                {"type": "addresses", "id": second["id"]},
            ]
        }
    }
    assert doc["included"] == [first, second]


async def test_sparse_fieldset_narrows_the_included_addresses(
    client: TestClient, customer: Customer
) -> None:
    await add_address(client, customer, city="Leipzig", zipCode="04109")
    resp = await client.get(
        f"/customers/{customer.reference}",
        params={"include": "addresses", "fields[addresses]": "city,zipCode"},
        headers=customer.headers,
    )
    doc = await resp.json()
    assert [i["attributes"] for i in doc["included"]] == [{"zipCode": "04109", "city": "Leipzig"}]
    assert doc["data"]["attributes"]["email"] == customer.email


async def test_customer_without_include_has_no_addresses(
    client: TestClient, customer: Customer
) -> None:
    await add_address(client, customer)
    doc = await (
        await client.get(f"/customers/{customer.reference}", headers=customer.headers)
    ).json()
    assert "relationships" not in doc["data"]
    assert "included" not in doc


# ------------------------------------------------------------------ anonymisation


async def test_anonymising_the_customer_removes_every_address_from_the_read_model(
    conn: asyncpg.Connection, client: TestClient, customer: Customer
) -> None:
    await add_address(client, customer)
    await add_address(client, customer)
    assert (
        await client.delete(f"/customers/{customer.reference}", headers=customer.headers)
    ).status == 204
    count = await conn.fetchval(
        "SELECT count(*) FROM addresses WHERE customer_reference = $1", customer.reference
    )
    assert count == 0


async def test_address_events_of_an_anonymised_customer_are_unreadable(
    app: web.Application, client: TestClient, customer: Customer
) -> None:
    added = await add_address(client, customer)
    await client.patch(
        f"/customers/{customer.reference}/addresses/{added['id']}",
        json=patch_doc(city="Erfurt"),
        headers=customer.headers,
    )
    assert (
        await client.delete(f"/customers/{customer.reference}", headers=customer.headers)
    ).status == 204
    events = await app[STORE].read_stream(customer_stream(customer.reference))
    address_events = [e for e in events if e.event_type.startswith("CustomerAddress")]
    assert [e.event_type for e in address_events] == [
        "CustomerAddressAdded",
        "CustomerAddressUpdated",
    ]
    for event in address_events:
        assert event.erased
        assert event.payload["address_id"] == added["id"]
        assert event.payload["city"] is None
        assert event.payload["first_name"] is None
