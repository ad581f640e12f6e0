"""The verification mail: sent asynchronously after registration, with a working link, once."""

from __future__ import annotations

import hashlib
import re
import uuid
from pathlib import Path

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient

from service.mail import messages
from service.mail.connection import SmtpConnection, SmtpTarget
from service.mail.mailer import Mailer
from service.mail.sink import MailSink, links_in
from service.typedefs import ONETIME, POOL, SETTINGS, STORE
from tests.conftest import (
    confirm,
    register,
    tables_containing,
    token_from_link,
    unique_email,
    wait_for_mailer,
)


def to(email: str):
    return lambda m: str(m["To"]).lower() == email.lower()


async def created_event_id(conn: asyncpg.Connection, reference: str) -> object:
    return await conn.fetchval(
        """SELECT event_id FROM events
           WHERE stream_id = $1 AND event_type = 'CustomerCreated'""",
        f"customer-{reference}",
    )


async def test_mail_goes_to_the_registered_address(client: TestClient, smtp: MailSink) -> None:
    email = unique_email("mail.to")
    await register(client, email=email)
    msg = await smtp.wait_for(to(email))
    assert str(msg["To"]) == email
    assert msg["Subject"] == "Please confirm your registration"


async def test_mail_links_to_the_storefront_confirmation_page_with_the_key(
    client: TestClient, smtp: MailSink
) -> None:
    email = unique_email("mail.link")
    await register(client, email=email)
    links = links_in(await smtp.wait_for(to(email)))
    assert len(links) == 1
    assert re.fullmatch(r"http://shop\.test/register/confirm\?token=[0-9a-f]{64}", links[0])


async def test_mailed_key_confirms_the_registration(client: TestClient, smtp: MailSink) -> None:
    email = unique_email("mail.works")
    await register(client, email=email)
    key = token_from_link(links_in(await smtp.wait_for(to(email)))[0])
    assert await confirm(client, key) == 204


async def test_each_registration_mails_its_own_key(client: TestClient, smtp: MailSink) -> None:
    first, second = unique_email("mail.a"), unique_email("mail.b")
    await register(client, email=first)
    await register(client, email=second)
    key_a = token_from_link(links_in(await smtp.wait_for(to(first)))[0])
    key_b = token_from_link(links_in(await smtp.wait_for(to(second)))[0])
    assert key_a != key_b


async def test_mail_is_delivered_exactly_once_when_smtp_refuses_twice_first(
    client: TestClient, app: web.Application, smtp: MailSink, conn: asyncpg.Connection
) -> None:
    await wait_for_mailer(app)  # earlier tests' mail must not use up the refusals
    smtp.fail_first = 2
    email = unique_email("mail.retry")
    doc = await register(client, email=email)
    await smtp.wait_for(to(email))
    await wait_for_mailer(app)
    assert smtp.refused == 2
    assert len(smtp.to(email)) == 1
    delivery = await conn.fetchrow(
        "SELECT attempts, delivered_at FROM mail_deliveries WHERE event_id = $1",
        await created_event_id(conn, doc["data"]["id"]),
    )
    assert delivery["attempts"] == 3
    assert delivery["delivered_at"] is not None


async def test_mail_sent_after_retries_still_carries_a_working_key(
    client: TestClient, app: web.Application, smtp: MailSink
) -> None:
    await wait_for_mailer(app)
    smtp.fail_first = 2
    email = unique_email("mail.retry.key")
    await register(client, email=email)
    key = token_from_link(links_in(await smtp.wait_for(to(email)))[0])
    assert await confirm(client, key) == 204


async def test_registration_answers_201_while_smtp_refuses_every_mail(
    client: TestClient, app: web.Application, smtp: MailSink
) -> None:
    await wait_for_mailer(app)
    smtp.fail_first = 10**6
    email = unique_email("mail.down")
    resp = await client.post(
        "/customers",
        json={
            "data": {
                "type": "customers",
                "attributes": {
                    "salutation": "Ms",
                    "firstName": "Ada",
                    "lastName": "King",
                    "email": email,
                    "password": "Secret123!",
                    "confirmPassword": "Secret123!",
                    "acceptedTerms": True,
                },
            }
        },
    )
    assert resp.status == 201
    assert smtp.to(email) == []
    smtp.fail_first = 0  # the server comes back: the mail follows
    await smtp.wait_for(to(email))


async def test_consecutive_mails_share_one_smtp_connection(
    client: TestClient, app: web.Application, smtp: MailSink
) -> None:
    await wait_for_mailer(app)
    opened = smtp.connections
    first, second = unique_email("conn.a"), unique_email("conn.b")
    await register(client, email=first)
    await smtp.wait_for(to(first))
    await register(client, email=second)
    await smtp.wait_for(to(second))
    assert smtp.connections - opened <= 1


async def test_mail_goes_out_at_first_attempt_after_the_server_hung_up(
    client: TestClient, app: web.Application, smtp: MailSink, conn: asyncpg.Connection
) -> None:
    await register(client, email=unique_email("hangup.before"))
    await wait_for_mailer(app)
    smtp.drop_connections()
    email = unique_email("hangup.after")
    doc = await register(client, email=email)
    await smtp.wait_for(to(email))
    await wait_for_mailer(app)  # the delivery row is written once the server said 250
    attempts = await conn.fetchval(
        "SELECT attempts FROM mail_deliveries WHERE event_id = $1",
        await created_event_id(conn, doc["data"]["id"]),
    )
    assert attempts == 1


async def test_registration_key_is_stored_only_as_its_hash(
    client: TestClient, smtp: MailSink, conn: asyncpg.Connection
) -> None:
    email = unique_email("mail.hash")
    doc = await register(client, email=email)
    key = token_from_link(links_in(await smtp.wait_for(to(email)))[0])
    digest = hashlib.sha256(key.encode()).hexdigest()
    stored = await conn.fetchval(
        "SELECT registration_key_hash FROM customers WHERE customer_reference = $1",
        doc["data"]["id"],
    )
    assert stored.hex() == digest
    payload = await conn.fetchval(
        "SELECT payload FROM events WHERE event_id = $1",
        await created_event_id(conn, doc["data"]["id"]),
    )
    assert payload["registration_key_hash"] == digest
    assert await tables_containing(conn, key) == []


async def test_plaintext_password_is_stored_nowhere(
    client: TestClient, smtp: MailSink, conn: asyncpg.Connection
) -> None:
    password = "Unique-Pa55word-" + unique_email("p")[:12]
    email = unique_email("mail.pw")
    await register(client, email=email, password=password, confirmPassword=password)
    await smtp.wait_for(to(email))
    assert await tables_containing(conn, password) == []


async def send_numbered(sink: MailSink, count: int) -> None:
    """Send mails to r1@example.com, r2@... through a started sink, then stop it."""
    connection = SmtpConnection(SmtpTarget(host="127.0.0.1", port=sink.port))
    try:
        for n in range(1, count + 1):
            msg = messages.confirmation(
                "shop@example.com", f"r{n}@example.com", f"http://shop.test/c?token={n}", f"<{n}@t>"
            )
            await connection.send(msg, "shop@example.com", f"r{n}@example.com")
    finally:
        await connection.close()
        await sink.stop()


async def test_local_sink_writes_each_mail_to_its_folder(tmp_path: Path) -> None:
    sink = MailSink(directory=tmp_path / "mail")
    await sink.start()
    await send_numbered(sink, 2)
    files = sorted(p.name for p in (tmp_path / "mail").iterdir())
    assert files == ["000001.eml", "000002.eml"]
    assert b"http://shop.test/c?token=2" in (tmp_path / "mail" / "000002.eml").read_bytes()


async def test_a_restarted_local_sink_numbers_on_and_overwrites_no_mail(tmp_path: Path) -> None:
    for _ in range(2):
        sink = MailSink(directory=tmp_path / "mail")
        await sink.start()
        await send_numbered(sink, 2)
    files = sorted(p.name for p in (tmp_path / "mail").iterdir())
    assert files == ["000001.eml", "000002.eml", "000003.eml", "000004.eml"]


async def offer_again(app: web.Application, smtp: MailSink, reference: str) -> None:
    """Offer a customer's CustomerCreated event to a second mailer, as after a crash
    before the checkpoint moved: prepare its batch, then handle it."""
    [created] = [
        e
        for e in await app[STORE].read_stream(f"customer-{reference}")
        if e.event_type == "CustomerCreated"
    ]
    mailer = Mailer(
        app[POOL], SmtpTarget(host="127.0.0.1", port=smtp.port), app[ONETIME], app[SETTINGS]
    )
    try:
        await mailer.prepare([created])
        await mailer.handle(created)
        await mailer.flush()
    finally:
        await mailer.close()


async def test_a_delivered_mail_is_not_sent_again_when_its_event_is_offered_again(
    client: TestClient, app: web.Application, smtp: MailSink
) -> None:
    email = unique_email("mail.again")
    doc = await register(client, email=email)
    await smtp.wait_for(to(email))
    await wait_for_mailer(app)  # its delivery row is written
    await offer_again(app, smtp, doc["data"]["id"])
    assert len(smtp.to(email)) == 1


async def test_a_mail_without_a_delivery_row_is_sent_when_its_event_is_offered_again(
    client: TestClient, app: web.Application, smtp: MailSink, conn: asyncpg.Connection
) -> None:
    email = unique_email("mail.unrecorded")
    doc = await register(client, email=email)
    await smtp.wait_for(to(email))
    await wait_for_mailer(app)
    event_id = await created_event_id(conn, doc["data"]["id"])
    await conn.execute("DELETE FROM mail_deliveries WHERE event_id = $1", event_id)
    await offer_again(app, smtp, doc["data"]["id"])
    assert len(smtp.to(email)) == 2
    assert await conn.fetchval(
        "SELECT delivered_at IS NOT NULL FROM mail_deliveries WHERE event_id = $1", event_id
    )


async def test_the_local_sink_keeps_only_its_latest_messages_in_memory(tmp_path: Path) -> None:
    sink = MailSink(directory=tmp_path / "mail", keep=2)
    await sink.start()
    await send_numbered(sink, 3)
    assert [str(m["To"]) for m in sink.messages] == ["r2@example.com", "r3@example.com"]
    assert sink.received == 3
    assert len(list((tmp_path / "mail").iterdir())) == 3


# ------------------------------------------------------------------ permanent refusals


def international_email() -> str:
    return f"jörg.{uuid.uuid4().hex[:10]}@exämple.test"


async def delivery_of(conn: asyncpg.Connection, reference: str) -> asyncpg.Record:
    return await conn.fetchrow(
        "SELECT delivered_at, failed_at, failure FROM mail_deliveries WHERE event_id = $1",
        await created_event_id(conn, reference),
    )


async def refused_before_a_plain_mail(
    client: TestClient, app: web.Application, smtp: MailSink, conn: asyncpg.Connection, email: str
) -> asyncpg.Record:
    """Register `email`, whose mail the relay refuses, then a plain address; once the
    plain one's mail arrived: nothing reached `email`, and its delivery row."""
    doc = await register(client, email=email)
    plain = unique_email("mail.plain")
    await register(client, email=plain)
    await smtp.wait_for(to(plain))
    await wait_for_mailer(app)
    assert smtp.to(email) == []
    return await delivery_of(conn, doc["data"]["id"])


async def test_mail_to_an_internationalised_address_arrives_with_a_working_key(
    client: TestClient, smtp: MailSink
) -> None:
    email = international_email()
    await register(client, email=email)
    msg = await smtp.wait_for(to(email))
    assert await confirm(client, token_from_link(links_in(msg)[0])) == 204


async def test_a_recipient_the_relay_refuses_for_good_does_not_hold_back_later_mail(
    client: TestClient, app: web.Application, smtp: MailSink, conn: asyncpg.Connection
) -> None:
    refused = unique_email("mail.refused")
    smtp.refused_recipients.add(refused)
    delivery = await refused_before_a_plain_mail(client, app, smtp, conn, refused)
    assert delivery["delivered_at"] is None
    assert delivery["failed_at"] is not None
    assert delivery["failure"] == "SMTPRecipientsRefused 550"


async def test_a_relay_without_smtputf8_gives_up_an_internationalised_address_only(
    client: TestClient, app: web.Application, smtp: MailSink, conn: asyncpg.Connection
) -> None:
    await wait_for_mailer(app)
    smtp.smtputf8 = False
    smtp.drop_connections()  # the mailer reconnects and meets the relay without it
    international = international_email()
    delivery = await refused_before_a_plain_mail(client, app, smtp, conn, international)
    assert delivery["failed_at"] is not None
    assert "SMTPUTF8" in delivery["failure"]
    assert international not in delivery["failure"]


async def test_a_given_up_mail_is_not_tried_again_when_its_event_is_offered_again(
    client: TestClient, app: web.Application, smtp: MailSink
) -> None:
    email = unique_email("mail.given.up")
    smtp.refused_recipients.add(email)
    doc = await register(client, email=email)
    await wait_for_mailer(app)
    smtp.refused_recipients.clear()
    await offer_again(app, smtp, doc["data"]["id"])
    assert smtp.to(email) == []


async def test_a_temporary_recipient_refusal_is_retried_until_it_is_taken(
    client: TestClient, app: web.Application, smtp: MailSink, conn: asyncpg.Connection
) -> None:
    await wait_for_mailer(app)
    smtp.fail_first = 1  # 451 at DATA: the relay's trouble, not the message's
    email = unique_email("mail.temporary")
    doc = await register(client, email=email)
    await smtp.wait_for(to(email))
    await wait_for_mailer(app)
    delivery = await delivery_of(conn, doc["data"]["id"])
    assert delivery["delivered_at"] is not None
    assert delivery["failed_at"] is None


async def test_each_delivery_is_recorded_as_its_mail_goes_out_not_at_the_batch_end(
    client: TestClient, app: web.Application, smtp: MailSink, conn: asyncpg.Connection
) -> None:
    refs = [(await register(client, email=unique_email("mail.crash")))["data"]["id"] for _ in "ab"]
    await wait_for_mailer(app)
    events = [
        e
        for ref in refs
        for e in await app[STORE].read_stream(f"customer-{ref}")
        if e.event_type == "CustomerCreated"
    ]
    await conn.execute(
        "DELETE FROM mail_deliveries WHERE event_id = ANY($1::uuid[])", [e.event_id for e in events]
    )
    mailer = Mailer(
        app[POOL], SmtpTarget(host="127.0.0.1", port=smtp.port), app[ONETIME], app[SETTINGS]
    )
    try:
        await mailer.prepare(events)
        await mailer.handle(events[0])
        # A crash here, before the batch's end, must not send the first mail again.
        assert (await delivery_of(conn, refs[0]))["delivered_at"] is not None
    finally:
        await mailer.close()
