"""PATCH /customer-password/{ref}: checks in the SPEC's order, and what a change revokes."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from events.customer import customer_stream
from service.mail.sink import MailSink
from service.typedefs import STORE
from tests.conftest import Customer, bearer, login, new_customer

NEW = "brand-New-pass2"


def change(password: str, new: str = NEW, confirm: str | None = None) -> dict[str, Any]:
    """A customer-password document."""
    return {
        "data": {
            "type": "customer-password",
            "attributes": {
                "password": password,
                "newPassword": new,
                "confirmPassword": new if confirm is None else confirm,
            },
        }
    }


async def patch_password(client: TestClient, customer: Customer, doc: dict[str, Any]) -> Any:
    return await client.patch(
        f"/customer-password/{customer.reference}", json=doc, headers=customer.headers
    )


async def errors_of(resp: Any) -> list[dict[str, Any]]:
    return (await resp.json())["errors"]


async def test_change_answers_204_and_the_new_password_logs_in(
    client: TestClient, customer: Customer
) -> None:
    resp = await patch_password(client, customer, change(customer.password))
    assert resp.status == 204
    assert await resp.read() == b""
    assert (await login(client, customer.email, customer.password)).status == 401
    assert (await login(client, customer.email, NEW)).status == 201


async def test_change_records_customer_password_changed(
    app: web.Application, client: TestClient, customer: Customer
) -> None:
    await patch_password(client, customer, change(customer.password))
    events = await app[STORE].read_stream(customer_stream(customer.reference))
    last = events[-1]
    assert last.event_type == "CustomerPasswordChanged"
    assert last.payload["reason"] == "change"
    assert NEW not in str(last.payload)


async def test_change_revokes_every_refresh_token(client: TestClient, customer: Customer) -> None:
    await patch_password(client, customer, change(customer.password))
    resp = await client.post(
        "/refresh-tokens",
        json={
            "data": {
                "type": "refresh-tokens",
                "attributes": {"refreshToken": customer.refresh_token},
            }
        },
    )
    assert resp.status == 401
    assert (await errors_of(resp))[0]["code"] == "004"


async def test_access_tokens_issued_before_the_change_stop_working(
    client: TestClient, customer: Customer
) -> None:
    await patch_password(client, customer, change(customer.password))
    resp = await client.get(f"/customers/{customer.reference}", headers=customer.headers)
    assert resp.status == 401
    assert await errors_of(resp) == [
        {"code": "001", "status": 401, "detail": "Invalid access token."}
    ]
    fresh = (await (await login(client, customer.email, NEW)).json())["data"]["attributes"]
    got = await client.get(f"/customers/{customer.reference}", headers=bearer(fresh["accessToken"]))
    assert got.status == 200


async def test_a_foreign_reference_is_unauthorized(
    client: TestClient, smtp: MailSink, customer: Customer
) -> None:
    other = await new_customer(client, smtp)
    resp = await client.patch(
        f"/customer-password/{other.reference}",
        json=change(customer.password),
        headers=customer.headers,
    )
    assert resp.status == 403
    assert await errors_of(resp) == [
        {"code": "802", "status": 403, "detail": "Request is unauthorized."}
    ]
    assert (await login(client, other.email, other.password)).status == 201


async def test_a_wrong_current_password_is_refused(client: TestClient, customer: Customer) -> None:
    resp = await patch_password(client, customer, change("not-my-password"))
    assert resp.status == 400
    assert await errors_of(resp) == [{"code": "408", "status": 400, "detail": "Invalid password"}]
    assert (await login(client, customer.email, customer.password)).status == 201


async def test_a_confirmation_that_differs_is_refused(
    client: TestClient, customer: Customer
) -> None:
    resp = await patch_password(client, customer, change(customer.password, confirm="other-pass1"))
    assert resp.status == 422
    assert await errors_of(resp) == [
        {
            "code": "422",
            "status": 422,
            "detail": "Value in field newPassword should be identical to value in the "
            "confirmPassword field.",
        }
    ]


async def test_a_short_new_password_is_a_validation_error(
    client: TestClient, customer: Customer
) -> None:
    resp = await patch_password(client, customer, change(customer.password, "short"))
    assert resp.status == 422
    assert await errors_of(resp) == [
        {
            "code": "901",
            "status": 422,
            "detail": "newPassword => This value is too short. It should have 8 characters or more.",
        }
    ]


async def test_a_long_new_password_is_a_validation_error(
    client: TestClient, customer: Customer
) -> None:
    resp = await patch_password(client, customer, change(customer.password, "x" * 65))
    assert resp.status == 422
    assert (await errors_of(resp))[0]["detail"] == (
        "newPassword => This value is too long. It should have 64 characters or less."
    )


async def test_non_printable_characters_are_refused(client: TestClient, customer: Customer) -> None:
    resp = await patch_password(client, customer, change(customer.password, "tab\there-pass"))
    assert resp.status == 400
    assert await errors_of(resp) == [
        {"code": "420", "status": 400, "detail": "The password character set is invalid."}
    ]


async def test_missing_attributes_are_listed_in_order(
    client: TestClient, customer: Customer
) -> None:
    doc = {"data": {"type": "customer-password", "attributes": {}}}
    resp = await patch_password(client, customer, doc)
    assert resp.status == 422
    assert [e["detail"] for e in await errors_of(resp)] == [
        "password => This field is missing.",
        "newPassword => This field is missing.",
        "confirmPassword => This field is missing.",
    ]


async def test_validation_comes_before_ownership(
    client: TestClient, smtp: MailSink, customer: Customer
) -> None:
    other = await new_customer(client, smtp)
    resp = await client.patch(
        f"/customer-password/{other.reference}",
        json=change(customer.password, "short"),
        headers=customer.headers,
    )
    assert resp.status == 422


async def test_a_change_needs_an_access_token(client: TestClient, customer: Customer) -> None:
    resp = await client.patch(
        f"/customer-password/{customer.reference}", json=change(customer.password)
    )
    assert resp.status == 403
    assert (await errors_of(resp))[0]["code"] == "002"


async def test_a_change_without_reference_is_refused(
    client: TestClient, customer: Customer
) -> None:
    resp = await client.patch(
        "/customer-password", json=change(customer.password), headers=customer.headers
    )
    assert resp.status == 400
    assert await errors_of(resp) == [
        {"code": "405", "status": 400, "detail": "Customer reference is missing."}
    ]
