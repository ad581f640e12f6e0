"""GET /metrics: Prometheus figures an operator watches."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from service.app import AppOptions
from service.clock import Clock
from service.mail.sink import MailSink
from service.typedefs import SUBSCRIBERS
from tests.conftest import login, register, registration, unique_email, wait_for_mailer


async def _scrape(client: TestClient) -> str:
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    return await resp.text()


def _value(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


async def test_requests_are_counted_by_route_template_and_status(client: TestClient) -> None:
    for _ in range(2):
        assert (await client.get("/customers/DE--999999")).status == 403
    text = await _scrape(client)
    count = _value(
        text,
        "glue_http_request_duration_seconds_count",
        method="GET",
        route="/customers/{ref}",
        status="403",
    )
    assert count == 2


async def test_the_scrape_itself_is_a_request_in_flight(client: TestClient) -> None:
    assert _value(await _scrape(client), "glue_http_requests_in_flight") == 1


async def test_appended_events_are_counted_by_type(client: TestClient) -> None:
    await register(client)
    await register(client)
    text = await _scrape(client)
    assert _value(text, "glue_events_appended_total", type="CustomerCreated") == 2


async def test_rejected_registrations_append_nothing(client: TestClient) -> None:
    email = unique_email()
    await register(client, email=email)
    again = await client.post("/customers", json=registration(email=email))
    assert again.status == 422
    text = await _scrape(client)
    assert _value(text, "glue_events_appended_total", type="CustomerCreated") == 1


async def test_delivered_mail_is_counted_by_kind(client: TestClient, app: web.Application) -> None:
    await wait_for_mailer(app)  # mail of earlier tests in this module's database
    before = await _scrape(client)
    await register(client)
    await wait_for_mailer(app)
    after = await _scrape(client)
    kind = {"kind": "CustomerCreated"}
    sent = _value(after, "glue_mail_delivered_total", **kind) or 0
    assert sent - (_value(before, "glue_mail_delivered_total", **kind) or 0) == 1


async def test_refused_deliveries_are_counted_as_failures(
    client: TestClient, app: web.Application, smtp: MailSink
) -> None:
    await wait_for_mailer(app)
    smtp.fail_first = smtp.refused + 1  # refuse the next message once
    email = unique_email()
    await register(client, email=email)
    await wait_for_mailer(app)
    assert len(smtp.to(email)) == 1
    assert _value(await _scrape(client), "glue_mail_failures_total") == 1


async def test_pool_usage_is_reported(client: TestClient) -> None:
    text = await _scrape(client)
    assert _value(text, "glue_db_pool_max") == 10
    size = _value(text, "glue_db_pool_size")
    idle = _value(text, "glue_db_pool_idle")
    assert size is not None and idle is not None
    assert 1 <= size <= 10 and 0 <= idle <= size


async def test_the_leading_process_is_marked(client: TestClient, app: web.Application) -> None:
    await wait_for_mailer(app)
    assert _value(await _scrape(client), "glue_subscriber_leader", subscriber="mailer") == 1


async def test_a_caught_up_subscriber_has_no_lag(client: TestClient, app: web.Application) -> None:
    await register(client)
    await wait_for_mailer(app)
    text = await _scrape(client)
    assert _value(text, "glue_subscriber_lag_events", subscriber="mailer") == 0
    assert _value(text, "glue_subscriber_lag_seconds", subscriber="mailer") == 0


async def test_an_open_writing_transaction_shows_as_the_oldest_writer(
    client: TestClient, conn: asyncpg.Connection, database: str
) -> None:
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.fetchval("SELECT pg_current_xact_id()")  # now it holds an xid
        other = await asyncpg.connect(database)
        try:
            for _ in range(3):
                await other.fetchval("SELECT pg_current_xact_id()")  # three more commits
        finally:
            await other.close()
        text = await _scrape(client)
    finally:
        await tx.rollback()
    writer_seconds = _value(text, "glue_db_oldest_writer_seconds")
    assert writer_seconds is not None and writer_seconds > 0
    xmin_age = _value(text, "glue_db_xmin_age_transactions")
    assert xmin_age is not None and xmin_age >= 3


class TestWithTheMailerStopped:
    """Lag while the mailer does not run, and after it catches up."""

    @pytest.fixture
    def app_options(self, app_options: AppOptions) -> AppOptions:
        app_options.run_subscribers = False
        return app_options

    async def test_unhandled_events_are_lag_until_the_subscriber_catches_up(
        self, client: TestClient, app: web.Application
    ) -> None:
        before = _value(await _scrape(client), "glue_subscriber_lag_events", subscriber="mailer")
        await register(client)
        await register(client)
        text = await _scrape(client)
        assert _value(text, "glue_subscriber_lag_events", subscriber="mailer") == (before or 0) + 2
        seconds = _value(text, "glue_subscriber_lag_seconds", subscriber="mailer")
        assert seconds is not None and seconds > 0
        await app[SUBSCRIBERS].start()
        await wait_for_mailer(app)
        text = await _scrape(client)
        assert _value(text, "glue_subscriber_lag_events", subscriber="mailer") == 0


class TestLoginBlocks:
    """Refused logins show in the metrics."""

    @pytest.fixture
    def clock(self) -> Clock:
        # Failures recorded a day back: later tests' logins (real time) are not blocked.
        clock = Clock()
        clock.advance(-timedelta(days=1))
        return clock

    async def test_a_blocked_login_is_counted(self, client: TestClient) -> None:
        username = unique_email("blocked")
        statuses = [(await login(client, username, "wrong-password")).status for _ in range(11)]
        assert statuses == [401] * 10 + [429]
        text = await _scrape(client)
        assert _value(text, "glue_login_blocked_total") == 1
