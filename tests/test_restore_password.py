"""PATCH /customer-restore-password/{any id}: the mailed key sets a new password, once, for 2 hours."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from events.customer import customer_stream
from service.auth.onetime import key_hash
from service.clock import Clock
from service.mail.sink import MailSink, links_in
from service.typedefs import STORE
from tests.conftest import Customer, login, token_from_link

NEW = "restored-Pass3"
RESTORE_LINK = "http://shop.test/password/restore?token="


async def restore_key(client: TestClient, smtp: MailSink, email: str, nth: int = 1) -> str:
    """Ask for a restore mail and return the key of the `nth` one that arrived."""
    resp = await client.post(
        "/customer-forgotten-password",
        json={"data": {"type": "customer-forgotten-password", "attributes": {"email": email}}},
    )
    assert resp.status == 204

    def restores() -> list[str]:
        return [
            link for m in smtp.to(email) for link in links_in(m) if link.startswith(RESTORE_LINK)
        ]

    await smtp.wait_for(lambda _: len(restores()) >= nth)
    return token_from_link(restores()[nth - 1])


def restore_doc(key: str, password: str = NEW, confirm: str | None = None) -> dict[str, Any]:
    return {
        "data": {
            "type": "customer-restore-password",
            "id": "mine",
            "attributes": {
                "restorePasswordKey": key,
                "password": password,
                "confirmPassword": password if confirm is None else confirm,
            },
        }
    }


async def restore(client: TestClient, doc: dict[str, Any]) -> Any:
    return await client.patch("/customer-restore-password/mine", json=doc)


async def login_status(client: TestClient, email: str, password: str) -> int:
    return (await login(client, email, password)).status


async def errors_of(resp: Any) -> list[dict[str, Any]]:
    return (await resp.json())["errors"]


INVALID_KEY = {"code": "415", "status": 422, "detail": "Restore password key is not valid."}


async def test_restore_sets_the_new_password(
    client: TestClient, smtp: MailSink, customer: Customer
) -> None:
    key = await restore_key(client, smtp, customer.email)
    resp = await restore(client, restore_doc(key))
    assert resp.status == 204
    assert await resp.read() == b""
    assert await login_status(client, customer.email, customer.password) == 401
    assert await login_status(client, customer.email, NEW) == 201


async def test_restore_records_password_changed_with_reason_restore(
    app: web.Application, client: TestClient, smtp: MailSink, customer: Customer
) -> None:
    key = await restore_key(client, smtp, customer.email)
    await restore(client, restore_doc(key))
    last = (await app[STORE].read_stream(customer_stream(customer.reference)))[-1]
    assert last.event_type == "CustomerPasswordChanged"
    assert last.payload["reason"] == "restore"
    assert last.payload["restore_key_hash"] == key_hash(key)


async def test_restore_revokes_refresh_and_access_tokens(
    client: TestClient, smtp: MailSink, customer: Customer
) -> None:
    key = await restore_key(client, smtp, customer.email)
    await restore(client, restore_doc(key))
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
    got = await client.get(f"/customers/{customer.reference}", headers=customer.headers)
    assert got.status == 401


async def test_a_key_works_only_once(
    client: TestClient, smtp: MailSink, customer: Customer
) -> None:
    key = await restore_key(client, smtp, customer.email)
    assert (await restore(client, restore_doc(key))).status == 204
    again = await restore(client, restore_doc(key, "another-Pass4"))
    assert again.status == 422
    assert await errors_of(again) == [INVALID_KEY]
    assert await login_status(client, customer.email, NEW) == 201


async def test_using_one_key_voids_the_others(
    client: TestClient, smtp: MailSink, customer: Customer
) -> None:
    first = await restore_key(client, smtp, customer.email, nth=1)
    second = await restore_key(client, smtp, customer.email, nth=2)
    assert (await restore(client, restore_doc(second))).status == 204
    resp = await restore(client, restore_doc(first, "another-Pass4"))
    assert await errors_of(resp) == [INVALID_KEY]


async def test_an_unknown_key_is_invalid(client: TestClient) -> None:
    resp = await restore(client, restore_doc("0" * 64))
    assert resp.status == 422
    assert await errors_of(resp) == [INVALID_KEY]


async def test_a_key_expires_after_two_hours(
    client: TestClient, smtp: MailSink, customer: Customer, clock: Clock
) -> None:
    key = await restore_key(client, smtp, customer.email)
    clock.advance(timedelta(hours=2, seconds=1))
    resp = await restore(client, restore_doc(key))
    assert resp.status == 400
    assert await errors_of(resp) == [
        {"code": "407", "status": 400, "detail": "Failed to change password."}
    ]
    assert await login_status(client, customer.email, customer.password) == 201


async def test_a_key_still_works_just_before_expiry(
    client: TestClient, smtp: MailSink, customer: Customer, clock: Clock
) -> None:
    key = await restore_key(client, smtp, customer.email)
    clock.advance(timedelta(hours=1, minutes=59))
    assert (await restore(client, restore_doc(key))).status == 204


async def test_a_confirmation_that_differs_is_refused(
    client: TestClient, smtp: MailSink, customer: Customer
) -> None:
    key = await restore_key(client, smtp, customer.email)
    resp = await restore(client, restore_doc(key, confirm="different-Pass5"))
    assert resp.status == 422
    assert await errors_of(resp) == [
        {
            "code": "406",
            "status": 422,
            "detail": "Value in field password should be identical to value in the "
            "confirmPassword field.",
        }
    ]
    # The refused attempt did not use the key up.
    assert (await restore(client, restore_doc(key))).status == 204


async def test_a_short_password_is_a_validation_error(client: TestClient) -> None:
    resp = await restore(client, restore_doc("0" * 64, "short"))
    assert resp.status == 422
    assert await errors_of(resp) == [
        {
            "code": "901",
            "status": 422,
            "detail": "password => This value is too short. It should have 8 characters or more.",
        }
    ]


async def test_non_printable_characters_are_refused(client: TestClient) -> None:
    resp = await restore(client, restore_doc("0" * 64, "new\nline-pass"))
    assert resp.status == 400
    assert (await errors_of(resp))[0]["code"] == "420"


async def test_missing_attributes_are_listed_in_order(client: TestClient) -> None:
    doc = {"data": {"type": "customer-restore-password", "attributes": {}}}
    resp = await restore(client, doc)
    assert resp.status == 422
    assert [e["detail"] for e in await errors_of(resp)] == [
        "restorePasswordKey => This field is missing.",
        "password => This field is missing.",
        "confirmPassword => This field is missing.",
    ]
