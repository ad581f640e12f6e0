"""POST /customers: registration, its validation (901/414/420), 406, 400 and the reference."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from service.app import AppOptions, init_app
from service.config import Settings
from tests.conftest import JSONAPI, PASSWORD, registration, unique_email

REQUIRED = (
    "salutation",
    "firstName",
    "lastName",
    "email",
    "password",
    "confirmPassword",
    "acceptedTerms",
)


def without(*names: str, **overrides: Any) -> dict[str, Any]:
    """A registration document missing some attributes."""
    doc = registration(**overrides)
    for name in names:
        del doc["data"]["attributes"][name]
    return doc


def err901(field: str, message: str) -> dict[str, Any]:
    """One 901 error object."""
    return {"code": "901", "status": 422, "detail": f"{field} => {message}"}


BLANK = "This value should not be blank."
MISSING = "This field is missing."
CHOICE = "The value you selected is not a valid choice."
EMAIL = "This value is not a valid email address."
DATE = "This value is not a valid date."
TRUE = "This value should be true."
GENDER_414 = {"code": "414", "status": 422, "detail": "Provided gender is invalid."}
EMAIL_TAKEN = {"code": "400", "status": 422, "detail": "Customer with this email already exists."}
MISMATCH = {
    "code": "406",
    "status": 422,
    "detail": "Value in field password should be identical to value in the confirmPassword field.",
}
CHARSET = {"code": "420", "status": 400, "detail": "The password character set is invalid."}


def too_long(n: int) -> str:
    return f"This value is too long. It should have {n} characters or less."


def too_short(n: int) -> str:
    return f"This value is too short. It should have {n} characters or more."


async def post(client: TestClient, doc: dict[str, Any]) -> tuple[int, Any]:
    resp = await client.post("/customers", json=doc)
    return resp.status, await resp.json()


# ------------------------------------------------------------------ success


async def test_registration_answers_201_with_the_customer_document(client: TestClient) -> None:
    email = unique_email("Reg.Doc")
    resp = await client.post("/customers", json=registration(email=email))
    assert resp.status == 201
    assert resp.content_type == JSONAPI
    data = (await resp.json())["data"]
    assert data["type"] == "customers"
    assert data["links"] == {"self": f"http://glue.test/customers/{data['id']}"}
    attrs = data["attributes"]
    assert set(attrs) == {
        "salutation",
        "firstName",
        "lastName",
        "email",
        "gender",
        "dateOfBirth",
        "createdAt",
        "updatedAt",
    }
    assert {k: attrs[k] for k in ("salutation", "firstName", "lastName", "email")} == {
        "salutation": "Mr",
        "firstName": "John",
        "lastName": "Doe",
        "email": email,
    }
    assert attrs["gender"] == "Male"
    assert attrs["dateOfBirth"] == "1990-01-31"
    assert attrs["createdAt"] == attrs["updatedAt"]


async def test_customer_reference_is_store_dash_dash_number(client: TestClient) -> None:
    status, doc = await post(client, registration())
    assert status == 201
    assert re.fullmatch(r"DE--[1-9]\d*", doc["data"]["id"])


async def test_each_registration_gets_a_new_higher_reference(client: TestClient) -> None:
    _, first = await post(client, registration())
    _, second = await post(client, registration())
    number = lambda doc: int(doc["data"]["id"].split("--")[1])  # noqa: E731
    assert number(second) > number(first)


async def test_reference_prefix_is_the_configured_store(
    aiohttp_client: Callable[[web.Application], Awaitable[TestClient]],
    settings: Settings,
    app_options: AppOptions,
) -> None:
    app = init_app(dataclasses.replace(settings, store="AT"), app_options)
    client = await aiohttp_client(app)
    status, doc = await post(client, registration())
    assert status == 201
    assert re.fullmatch(r"AT--\d+", doc["data"]["id"])


async def test_optional_gender_and_date_of_birth_may_be_left_out(client: TestClient) -> None:
    status, doc = await post(client, without("gender", "dateOfBirth"))
    assert status == 201
    assert doc["data"]["attributes"]["gender"] is None
    assert doc["data"]["attributes"]["dateOfBirth"] is None


async def test_optional_gender_and_date_of_birth_may_be_null(client: TestClient) -> None:
    status, doc = await post(client, registration(gender=None, dateOfBirth=None))
    assert status == 201
    assert doc["data"]["attributes"]["gender"] is None
    assert doc["data"]["attributes"]["dateOfBirth"] is None


async def test_unknown_attributes_are_ignored(client: TestClient) -> None:
    status, doc = await post(client, registration(favouriteColour="green", isAdmin=True))
    assert status == 201
    assert "favouriteColour" not in doc["data"]["attributes"]


async def test_password_is_never_returned_and_is_stored_as_argon2id(
    client: TestClient, conn: asyncpg.Connection
) -> None:
    status, doc = await post(client, registration())
    assert status == 201
    assert not {"password", "confirmPassword", "passwordHash"} & set(doc["data"]["attributes"])
    stored = await conn.fetchval(
        "SELECT password_hash FROM customers WHERE customer_reference = $1", doc["data"]["id"]
    )
    assert stored.startswith("$argon2id$")


# ------------------------------------------------------------------ 901 validation


async def test_all_missing_attributes_list_every_required_one_in_order(client: TestClient) -> None:
    status, doc = await post(client, {"data": {"type": "customers", "attributes": {}}})
    assert status == 422
    assert doc == {"errors": [err901(name, MISSING) for name in REQUIRED]}


async def test_all_null_attributes_are_blank_in_order(client: TestClient) -> None:
    attrs = dict.fromkeys([*REQUIRED, "gender", "dateOfBirth"])
    status, doc = await post(client, {"data": {"type": "customers", "attributes": attrs}})
    assert status == 422
    assert doc == {"errors": [err901(name, BLANK) for name in REQUIRED]}


async def test_every_kind_of_violation_at_once_follows_the_attribute_order(
    client: TestClient,
) -> None:
    doc = registration(
        salutation="Sir",
        firstName="",
        lastName="x" * 101,
        email="nope",
        gender="Other",
        dateOfBirth="1990-13-01",
        password="short",
        confirmPassword=None,
        acceptedTerms=False,
    )
    status, body = await post(client, doc)
    assert status == 422
    assert body == {
        "errors": [
            err901("salutation", CHOICE),
            err901("firstName", BLANK),
            err901("lastName", too_long(100)),
            err901("email", EMAIL),
            GENDER_414,
            err901("dateOfBirth", DATE),
            err901("password", too_short(8)),
            err901("confirmPassword", BLANK),
            err901("acceptedTerms", TRUE),
        ]
    }


SINGLE_VIOLATIONS = [
    ("salutation", "", BLANK),
    ("salutation", None, BLANK),
    ("salutation", "Sir", CHOICE),
    ("salutation", "mr", CHOICE),
    ("salutation", 1, CHOICE),
    ("firstName", 42, "This value should be of type string."),
    ("firstName", "", BLANK),
    ("firstName", "   ", BLANK),
    ("firstName", None, BLANK),
    ("firstName", "x" * 101, too_long(100)),
    ("lastName", "", BLANK),
    ("lastName", None, BLANK),
    ("lastName", "x" * 101, too_long(100)),
    ("email", "", BLANK),
    ("email", None, BLANK),
    ("email", "not-an-email", EMAIL),
    ("email", "two@@example.com", EMAIL),
    ("email", "spaces in@example.com", EMAIL),
    ("email", "trailing.newline@example.com\n", EMAIL),
    ("email", "nul\u0000inside@example.com", EMAIL),
    ("email", "a" * 89 + "@example.com", too_long(100)),
    ("dateOfBirth", "1990-02-30", DATE),
    ("dateOfBirth", "31.01.1990", DATE),
    ("dateOfBirth", "1990-01-31\n", DATE),
    ("dateOfBirth", "", DATE),
    ("dateOfBirth", 19900131, DATE),
    ("password", None, BLANK),
    ("password", "", BLANK),
    ("password", "Sh0rt!x", too_short(8)),
    ("password", "x" * 65, too_long(64)),
    ("confirmPassword", None, BLANK),
    ("acceptedTerms", False, TRUE),
    ("acceptedTerms", "true", TRUE),
    ("acceptedTerms", 1, TRUE),
    ("acceptedTerms", None, BLANK),
]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    SINGLE_VIOLATIONS,
    ids=[f"{f}={v!r}"[:40] for f, v, _ in SINGLE_VIOLATIONS],
)
async def test_single_violation_gives_exactly_its_901_error(
    client: TestClient, field: str, value: Any, message: str
) -> None:
    doc = registration()
    doc["data"]["attributes"][field] = value
    if field == "password" and value:
        doc["data"]["attributes"]["confirmPassword"] = value
    status, doc = await post(client, doc)
    assert status == 422
    assert doc == {"errors": [err901(field, message)]}


@pytest.mark.parametrize("field", REQUIRED)
async def test_single_missing_attribute_gives_exactly_its_901_error(
    client: TestClient, field: str
) -> None:
    status, doc = await post(client, without(field))
    assert status == 422
    assert doc == {"errors": [err901(field, MISSING)]}


async def test_names_and_email_at_their_maximum_length_are_accepted(client: TestClient) -> None:
    email = unique_email("m")
    email = "a" * (100 - len(email)) + email
    status, doc = await post(
        client, registration(email=email, firstName="F" * 100, lastName="L" * 100)
    )
    assert status == 201, doc
    assert doc["data"]["attributes"]["email"] == email


async def test_password_of_8_and_of_64_characters_is_accepted(client: TestClient) -> None:
    for password in ("Exactly8", "P" * 64):
        status, doc = await post(client, registration(password=password, confirmPassword=password))
        assert status == 201, doc


@pytest.mark.parametrize("gender", ["Other", "male", "", 3])
async def test_invalid_gender_answers_414_in_the_gender_slot(
    client: TestClient, gender: Any
) -> None:
    status, doc = await post(client, registration(gender=gender))
    assert status == 422
    assert doc == {"errors": [GENDER_414]}


async def test_invalid_gender_keeps_its_place_between_email_and_date_of_birth(
    client: TestClient,
) -> None:
    status, doc = await post(client, registration(email="bad", gender="X", dateOfBirth="yesterday"))
    assert status == 422
    assert doc["errors"] == [err901("email", EMAIL), GENDER_414, err901("dateOfBirth", DATE)]


# ------------------------------------------------------------------ 420, 406, 400


@pytest.mark.parametrize("password", ["Passw\x07rd123", "tab\tinside1", "line\nbreak12"])
async def test_non_printable_password_answers_400_420(client: TestClient, password: str) -> None:
    status, doc = await post(client, registration(password=password, confirmPassword=password))
    assert status == 400
    assert doc == {"errors": [CHARSET]}


async def test_901_violations_win_over_a_non_printable_password(client: TestClient) -> None:
    password = "Passw\x07rd123"
    status, doc = await post(
        client, registration(lastName="", password=password, confirmPassword=password)
    )
    assert status == 422
    assert doc == {"errors": [err901("lastName", BLANK)]}


async def test_password_mismatch_answers_406(client: TestClient) -> None:
    status, doc = await post(client, registration(confirmPassword=PASSWORD + "x"))
    assert status == 422
    assert doc == {"errors": [MISMATCH]}


async def test_password_mismatch_is_not_reported_while_another_attribute_is_invalid(
    client: TestClient,
) -> None:
    status, doc = await post(client, registration(firstName="", confirmPassword="different1"))
    assert status == 422
    assert doc == {"errors": [err901("firstName", BLANK)]}


async def test_taken_email_in_another_case_answers_422_400(client: TestClient) -> None:
    email = unique_email("Taken.Case")
    assert (await post(client, registration(email=email)))[0] == 201
    status, doc = await post(client, registration(email=email.upper()))
    assert status == 422
    assert doc == {"errors": [EMAIL_TAKEN]}


async def test_password_mismatch_wins_over_a_taken_email(client: TestClient) -> None:
    email = unique_email("taken.mismatch")
    assert (await post(client, registration(email=email)))[0] == 201
    status, doc = await post(client, registration(email=email, confirmPassword="other-pass"))
    assert status == 422
    assert doc == {"errors": [MISMATCH]}


async def test_concurrent_registrations_of_one_email_create_exactly_one_customer(
    client: TestClient, conn: asyncpg.Connection
) -> None:
    email = unique_email("race")
    variants = [email if i % 2 else email.upper() for i in range(20)]
    responses = await asyncio.gather(
        *(client.post("/customers", json=registration(email=e)) for e in variants)
    )
    statuses = sorted(r.status for r in responses)
    assert statuses == [201] + [422] * 19
    for resp in responses:
        if resp.status == 422:
            assert await resp.json() == {"errors": [EMAIL_TAKEN]}
    rows = await conn.fetchval(
        "SELECT count(*) FROM customers WHERE lower(email) = $1", email.lower()
    )
    assert rows == 1
