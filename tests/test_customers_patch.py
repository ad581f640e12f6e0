"""PATCH /customers/{ref}: partial update of the token's own customer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from events.store import EventStore
from service.mail.sink import MailSink
from service.typedefs import STORE
from tests.conftest import Customer, login, new_customer, register, registration, unique_email

UNAUTHORIZED = {"errors": [{"code": "802", "status": 403, "detail": "Request is unauthorized."}]}
EMAIL_TAKEN = {
    "errors": [{"code": "400", "status": 422, "detail": "Customer with this email already exists."}]
}


def patch_doc(**attributes: Any) -> dict[str, Any]:
    return {"data": {"type": "customers", "attributes": attributes}}


async def patch(client: TestClient, c: Customer, **attributes: Any) -> Any:
    return await client.patch(
        f"/customers/{c.reference}", json=patch_doc(**attributes), headers=c.headers
    )


async def current(client: TestClient, c: Customer) -> dict[str, Any]:
    resp = await client.get(f"/customers/{c.reference}", headers=c.headers)
    assert resp.status == 200
    return (await resp.json())["data"]["attributes"]


async def events_of(client: TestClient, c: Customer) -> list[Any]:
    store: EventStore = client.app[STORE]
    return await store.read_stream(f"customer-{c.reference}")


# ------------------------------------------------------------------ success


async def test_patch_answers_200_with_the_updated_customer(
    client: TestClient, customer: Customer
) -> None:
    resp = await patch(client, customer, firstName="Jane")
    assert resp.status == 200
    data = (await resp.json())["data"]
    assert data["id"] == customer.reference
    assert data["attributes"]["firstName"] == "Jane"
    assert data["links"] == {"self": f"http://glue.test/customers/{customer.reference}"}


async def test_patch_changes_only_the_attributes_sent(
    client: TestClient, customer: Customer
) -> None:
    before = await current(client, customer)
    assert (await patch(client, customer, lastName="Smith", gender="Female")).status == 200
    after = await current(client, customer)
    changed = {k for k in after if after[k] != before[k]}
    assert changed == {"lastName", "gender", "updatedAt"}
    assert (after["lastName"], after["gender"]) == ("Smith", "Female")


async def test_get_after_patch_reads_the_write(client: TestClient, customer: Customer) -> None:
    assert (await patch(client, customer, salutation="Ms", dateOfBirth="1985-05-05")).status == 200
    after = await current(client, customer)
    assert (after["salutation"], after["dateOfBirth"]) == ("Ms", "1985-05-05")


async def test_patch_answer_equals_the_get_that_follows(
    client: TestClient, customer: Customer
) -> None:
    # The answer is built from the command's folded state, the GET from the read model.
    resp = await patch(client, customer, firstName="Jo", gender=None, dateOfBirth="1970-01-02")
    assert resp.status == 200
    assert (await resp.json())["data"]["attributes"] == await current(client, customer)


async def test_unchanged_patch_answer_equals_the_get_that_follows(
    client: TestClient, customer: Customer
) -> None:
    resp = await patch(client, customer)
    assert resp.status == 200
    assert (await resp.json())["data"]["attributes"] == await current(client, customer)


async def test_patch_moves_updated_at_but_not_created_at(
    client: TestClient, customer: Customer
) -> None:
    before = await current(client, customer)
    assert (await patch(client, customer, firstName="Moved")).status == 200
    after = await current(client, customer)
    assert after["createdAt"] == before["createdAt"]
    assert after["updatedAt"] > before["updatedAt"]


async def test_optional_attributes_can_be_cleared_with_null(
    client: TestClient, customer: Customer
) -> None:
    assert (await patch(client, customer, gender=None, dateOfBirth=None)).status == 200
    after = await current(client, customer)
    assert (after["gender"], after["dateOfBirth"]) == (None, None)


async def test_patch_with_no_attributes_changes_nothing(
    client: TestClient, customer: Customer
) -> None:
    before = await current(client, customer)
    resp = await patch(client, customer)
    assert resp.status == 200
    assert await current(client, customer) == before


async def test_patch_ignores_password_terms_and_timestamps(
    client: TestClient, customer: Customer
) -> None:
    before = await current(client, customer)
    resp = await patch(
        client,
        customer,
        password="Another-pass1",
        confirmPassword="Another-pass1",
        acceptedTerms=False,
        createdAt="2000-01-01 00:00:00.000000",
        updatedAt="2000-01-01 00:00:00.000000",
    )
    assert resp.status == 200
    assert await current(client, customer) == before
    assert (await login(client, customer.email, customer.password)).status == 201
    assert (await login(client, customer.email, "Another-pass1")).status == 401


async def test_patch_appends_customer_updated_with_only_the_changed_fields(
    client: TestClient, customer: Customer
) -> None:
    assert (await patch(client, customer, firstName="Jane", lastName="Doe")).status == 200
    last = (await events_of(client, customer))[-1]
    assert last.event_type == "CustomerUpdated"
    # lastName was "Doe" already: not a change.
    assert last.payload["changed"] == ["first_name"]
    assert last.payload["first_name"] == "Jane"
    assert all(last.payload[k] is None for k in ("email", "last_name", "salutation", "gender"))


async def test_patch_with_unchanged_values_appends_nothing(
    client: TestClient, customer: Customer
) -> None:
    before = await events_of(client, customer)
    resp = await patch(client, customer, firstName="John", email=customer.email)
    assert resp.status == 200
    assert len(await events_of(client, customer)) == len(before)


async def test_concurrent_patches_of_different_attributes_all_apply(
    client: TestClient, customer: Customer
) -> None:
    changes = [
        {"salutation": "Dr"},
        {"firstName": "Ada"},
        {"lastName": "Lovelace"},
        {"gender": "Female"},
        {"dateOfBirth": "1815-12-10"},
    ]
    responses = await asyncio.gather(*(patch(client, customer, **c) for c in changes))
    assert [r.status for r in responses] == [200] * len(changes)
    after = await current(client, customer)
    for change in changes:
        for name, value in change.items():
            assert after[name] == value


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("attributes", "error"),
    [
        ({"firstName": ""}, "firstName => This value should not be blank."),
        ({"lastName": None}, "lastName => This value should not be blank."),
        (
            {"lastName": "x" * 101},
            "lastName => This value is too long. It should have 100 characters or less.",
        ),
        ({"salutation": "Sir"}, "salutation => The value you selected is not a valid choice."),
        ({"email": "nope"}, "email => This value is not a valid email address."),
        ({"email": None}, "email => This value should not be blank."),
        ({"dateOfBirth": "1990-02-30"}, "dateOfBirth => This value is not a valid date."),
    ],
    ids=["blank", "null", "too-long", "choice", "email", "null-email", "date"],
)
async def test_each_sent_attribute_is_validated(
    client: TestClient, customer: Customer, attributes: dict[str, Any], error: str
) -> None:
    resp = await patch(client, customer, **attributes)
    assert resp.status == 422
    assert await resp.json() == {"errors": [{"code": "901", "status": 422, "detail": error}]}


async def test_invalid_gender_answers_414(client: TestClient, customer: Customer) -> None:
    resp = await patch(client, customer, gender="Other")
    assert resp.status == 422
    assert await resp.json() == {
        "errors": [{"code": "414", "status": 422, "detail": "Provided gender is invalid."}]
    }


async def test_rejected_patch_changes_nothing(client: TestClient, customer: Customer) -> None:
    before = await current(client, customer)
    resp = await patch(client, customer, firstName="Valid", lastName="")
    assert resp.status == 422
    assert await current(client, customer) == before


# ------------------------------------------------------------------ ownership


async def test_patch_foreign_customer_answers_403_802(
    client: TestClient, smtp: MailSink, customer: Customer
) -> None:
    other = await new_customer(client, smtp)
    resp = await client.patch(
        f"/customers/{other.reference}", json=patch_doc(firstName="Evil"), headers=customer.headers
    )
    assert resp.status == 403
    assert await resp.json() == UNAUTHORIZED
    assert (await current(client, other))["firstName"] == "John"


async def test_patch_unknown_customer_answers_403_802(
    client: TestClient, customer: Customer
) -> None:
    resp = await client.patch(
        "/customers/DE--999999999", json=patch_doc(firstName="X"), headers=customer.headers
    )
    assert resp.status == 403
    assert await resp.json() == UNAUTHORIZED


async def test_validation_beats_ownership(
    client: TestClient, smtp: MailSink, customer: Customer
) -> None:
    other = await new_customer(client, smtp)
    resp = await client.patch(
        f"/customers/{other.reference}", json=patch_doc(firstName=""), headers=customer.headers
    )
    assert resp.status == 422


# ------------------------------------------------------------------ email


async def test_email_of_another_customer_in_any_case_answers_422_400(
    client: TestClient, customer: Customer
) -> None:
    taken = unique_email("Taken.By.Other")
    await register(client, email=taken)
    for variant in (taken, taken.upper(), taken.lower()):
        resp = await patch(client, customer, email=variant)
        assert resp.status == 422
        assert await resp.json() == EMAIL_TAKEN
    assert (await current(client, customer))["email"] == customer.email


async def test_own_email_in_another_case_is_no_conflict(
    client: TestClient, customer: Customer
) -> None:
    resp = await patch(client, customer, email=customer.email.upper())
    assert resp.status == 200
    assert (await resp.json())["data"]["attributes"]["email"] == customer.email.upper()


async def test_changed_email_logs_in_and_frees_the_old_one(
    client: TestClient, customer: Customer
) -> None:
    new_email = unique_email("changed")
    assert (await patch(client, customer, email=new_email)).status == 200
    assert (await login(client, new_email, customer.password)).status == 201
    resp = await client.post("/customers", json=registration(email=customer.email))
    assert resp.status == 201


async def test_two_customers_racing_for_one_email_get_it_once(
    client: TestClient, smtp: MailSink, customer: Customer
) -> None:
    other = await new_customer(client, smtp)
    wanted = unique_email("contested")
    responses = await asyncio.gather(
        patch(client, customer, email=wanted), patch(client, other, email=wanted.upper())
    )
    assert sorted(r.status for r in responses) == [200, 422]
