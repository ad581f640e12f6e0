"""POST /customer-forgotten-password: 204 for any email; only confirmed customers get a mail."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from events.customer import customer_stream
from service.clock import Clock
from service.mail.sink import MailSink, links_in
from service.typedefs import BACKGROUND, STORE
from tests.conftest import Customer, register, token_from_link, unique_email, wait_for_mailer

RESTORE_LINK = "http://shop.test/password/restore?token="


async def forgot(client: TestClient, email: str) -> Any:
    """POST the email to /customer-forgotten-password."""
    return await client.post(
        "/customer-forgotten-password",
        json={"data": {"type": "customer-forgotten-password", "attributes": {"email": email}}},
    )


async def settle(app: web.Application) -> None:
    """Wait until the request's deferred work and the mails it caused are done."""
    await app[BACKGROUND].drain()
    await wait_for_mailer(app)


def restore_mails(smtp: MailSink, email: str) -> list[Any]:
    return [m for m in smtp.to(email) if any(RESTORE_LINK in link for link in links_in(m))]


async def test_a_confirmed_customer_gets_a_restore_link(
    client: TestClient, smtp: MailSink, customer: Customer
) -> None:
    resp = await forgot(client, customer.email)
    assert resp.status == 204
    assert await resp.read() == b""
    msg = await smtp.wait_for(lambda m: m in restore_mails(smtp, customer.email))
    [link] = links_in(msg)
    assert link.startswith(RESTORE_LINK)
    assert len(token_from_link(link)) == 64


async def test_the_email_matches_in_any_case(
    app: web.Application, client: TestClient, smtp: MailSink, customer: Customer
) -> None:
    assert (await forgot(client, customer.email.upper())).status == 204
    await settle(app)
    assert len(restore_mails(smtp, customer.email)) == 1


async def test_the_event_holds_only_the_key_hash_and_a_two_hour_expiry(
    app: web.Application, client: TestClient, smtp: MailSink, customer: Customer, clock: Clock
) -> None:
    before = clock.now()
    await forgot(client, customer.email)
    await settle(app)
    key = token_from_link(links_in(restore_mails(smtp, customer.email)[0])[0])
    events = await app[STORE].read_stream(customer_stream(customer.reference))
    last = events[-1]
    assert last.event_type == "CustomerPasswordResetRequested"
    assert set(last.payload) == {"key_hash", "expires_at"}
    assert last.payload["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert key not in str(last.payload) and key not in str(last.metadata)
    expires_at = datetime.fromisoformat(last.payload["expires_at"])
    assert before + timedelta(hours=2) <= expires_at <= clock.now() + timedelta(hours=2)


async def test_an_unknown_email_answers_204_and_sends_nothing(
    app: web.Application, client: TestClient, smtp: MailSink
) -> None:
    email = unique_email("nobody")
    resp = await forgot(client, email)
    assert resp.status == 204
    await settle(app)
    assert smtp.to(email) == []


async def test_an_unconfirmed_customer_gets_no_restore_mail(
    app: web.Application, client: TestClient, smtp: MailSink
) -> None:
    email = unique_email("unconfirmed")
    doc = await register(client, email=email)
    resp = await forgot(client, email)
    assert resp.status == 204
    await settle(app)
    assert restore_mails(smtp, email) == []
    events = await app[STORE].read_stream(customer_stream(doc["data"]["id"]))
    assert [e.event_type for e in events] == ["CustomerCreated"]


async def test_each_request_mails_its_own_key(
    app: web.Application, client: TestClient, smtp: MailSink, customer: Customer
) -> None:
    await forgot(client, customer.email)
    await forgot(client, customer.email)
    await settle(app)
    keys = {token_from_link(links_in(m)[0]) for m in restore_mails(smtp, customer.email)}
    assert len(keys) == 2


async def test_an_invalid_email_is_a_validation_error(client: TestClient) -> None:
    resp = await forgot(client, "not-an-email")
    assert resp.status == 422
    assert (await resp.json())["errors"] == [
        {
            "code": "901",
            "status": 422,
            "detail": "email => This value is not a valid email address.",
        }
    ]


async def test_a_missing_email_is_a_validation_error(client: TestClient) -> None:
    resp = await client.post(
        "/customer-forgotten-password",
        json={"data": {"type": "customer-forgotten-password", "attributes": {}}},
    )
    assert resp.status == 422
    assert (await resp.json())["errors"][0]["detail"] == "email => This field is missing."


async def reset_events(app: web.Application, customer: Customer) -> int:
    events = await app[STORE].read_stream(customer_stream(customer.reference))
    return sum(e.event_type == "CustomerPasswordResetRequested" for e in events)


async def test_a_fourth_request_within_the_hour_answers_204_but_mails_nothing(
    app: web.Application, client: TestClient, smtp: MailSink, customer: Customer
) -> None:
    statuses = [(await forgot(client, customer.email)).status for _ in range(4)]
    await settle(app)
    assert statuses == [204] * 4
    assert len(restore_mails(smtp, customer.email)) == 3
    assert await reset_events(app, customer) == 3


async def test_the_mail_cap_lifts_an_hour_after_the_requests(
    app: web.Application, client: TestClient, smtp: MailSink, customer: Customer, clock: Clock
) -> None:
    for _ in range(3):
        await forgot(client, customer.email)
    await settle(app)
    clock.advance(timedelta(minutes=61))
    await forgot(client, customer.email)
    await settle(app)
    assert len(restore_mails(smtp, customer.email)) == 4


async def test_restoring_the_password_lifts_the_mail_cap(
    app: web.Application, client: TestClient, smtp: MailSink, customer: Customer
) -> None:
    for _ in range(3):
        await forgot(client, customer.email)
    await settle(app)
    key = token_from_link(links_in(restore_mails(smtp, customer.email)[0])[0])
    attrs = {"restorePasswordKey": key, "password": "Restored-1", "confirmPassword": "Restored-1"}
    resp = await client.patch(
        "/customer-restore-password/mine",
        json={"data": {"type": "customer-restore-password", "attributes": attrs}},
    )
    assert resp.status == 204
    await forgot(client, customer.email)
    await settle(app)
    assert len(restore_mails(smtp, customer.email)) == 4
