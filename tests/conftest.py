"""Shared fixtures: a real PostgreSQL, a real SMTP sink, the app, a confirmed customer."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from events.crypto import KeyRing
from events.subscribers import RuntimeOptions
from service import db
from service.app import AppOptions, init_app
from service.clock import Clock
from service.config import Settings
from service.mail.mailer import SmtpTarget
from service.mail.sink import MailSink, links_in
from service.typedefs import SUBSCRIBERS
from tests import pg

JSONAPI = "application/vnd.api+json"
PASSWORD = "change123!Secret"


# ------------------------------------------------------------------ database


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """DSN of the server tests create their databases on."""
    with pg.server_dsn() as dsn:
        yield dsn


@pytest.fixture(scope="session")
async def schema_template(pg_server: str) -> AsyncIterator[str]:
    """A database holding the schema, copied for each test module."""
    dsn = await pg.create_database(pg_server)
    conn = await db.connect(dsn)
    try:
        await db.apply_schema(conn)
    finally:
        await conn.close()
    yield pg.database_name(dsn)
    await pg.drop_database(pg_server, dsn)


@pytest.fixture(scope="module")
async def database(pg_server: str, schema_template: str) -> AsyncIterator[str]:
    """A fresh database with the schema, one per test module."""
    dsn = await pg.create_database(pg_server, template=schema_template)
    yield dsn
    await pg.drop_database(pg_server, dsn)


@pytest.fixture
async def pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool like the service's on the module's database (room for a soak's writers)."""
    p = await db.create_pool(database, min_size=1, max_size=16)
    yield p
    await p.close()


@pytest.fixture
def keyring() -> KeyRing:
    """A fresh master key, shared by every "process" of a test."""
    return KeyRing(os.urandom(32))


@pytest.fixture
async def conn(database: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to the module's database."""
    c = await db.connect(database)
    yield c
    await c.close()


# ------------------------------------------------------------------ mail


@pytest.fixture
async def smtp() -> AsyncIterator[MailSink]:
    """A real SMTP server (aiosmtpd) on loopback that keeps what it receives."""
    sink = MailSink()
    await sink.start()
    yield sink
    await sink.stop()


# ------------------------------------------------------------------ app


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where generated keys live during the run."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    """Settings for tests: cheap argon2 parameters, fast subscriber polling."""
    return Settings(
        data_dir=data_dir,
        argon2_memory_kib=1024,
        argon2_time_cost=1,
        hash_workers=2,
        db_pool_min=1,
        db_pool_max=10,
        public_base_url="http://glue.test",
        storefront_url="http://shop.test",
        # Tests send mails one after another: no batching wait between them (the
        # runtime's batching is specified in test_subscribers.py).
        mail_batch_seconds=0.0,
    )


@pytest.fixture
def clock() -> Clock:
    """A clock tests can move forward."""
    return Clock()


@pytest.fixture
def app_options(database: str, smtp: MailSink, clock: Clock) -> AppOptions:
    """Options wiring the app to the module's database and the SMTP sink."""
    return AppOptions(
        dsn=database,
        clock=clock,
        smtp=SmtpTarget(host="127.0.0.1", port=smtp.port, timeout=5),
        runtime=RuntimeOptions(
            poll_seconds=0.5, leader_retry_seconds=0.2, backoff_base=0.05, backoff_cap=0.2
        ),
        apply_schema=False,
    )


@pytest.fixture
def app(settings: Settings, app_options: AppOptions) -> web.Application:
    """The application under test."""
    return init_app(settings, app_options)


@pytest.fixture
async def client(
    smtp: MailSink,
    aiohttp_client: Callable[[web.Application], Awaitable[TestClient]],
    app: web.Application,
) -> TestClient:
    """An HTTP client talking to the app over a real socket.

    `smtp` comes first so it is torn down last: the app (closed by aiohttp_client's
    teardown) must stop its mailer while the sink still answers.
    """
    return await aiohttp_client(app)


# ------------------------------------------------------------------ helpers


def unique_email(prefix: str = "user") -> str:
    """An email no other test uses."""
    return f"{prefix}.{uuid.uuid4().hex[:10]}@example.com"


def registration(email: str | None = None, **overrides: Any) -> dict[str, Any]:
    """A valid registration document, with attribute overrides."""
    attributes: dict[str, Any] = {
        "salutation": "Mr",
        "firstName": "John",
        "lastName": "Doe",
        "email": email or unique_email(),
        "gender": "Male",
        "dateOfBirth": "1990-01-31",
        "password": PASSWORD,
        "confirmPassword": PASSWORD,
        "acceptedTerms": True,
    }
    attributes.update(overrides)
    return {"data": {"type": "customers", "attributes": attributes}}


def bearer(token: str) -> dict[str, str]:
    """An Authorization header."""
    return {"Authorization": f"Bearer {token}"}


def token_from_link(link: str) -> str:
    """The `token` query parameter of a mail link."""
    return link.split("token=", 1)[1]


@dataclass
class Customer:
    """A registered, confirmed and logged-in customer."""

    reference: str
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        """Authorization header for this customer."""
        return bearer(self.access_token)


async def register(client: TestClient, **overrides: Any) -> dict[str, Any]:
    """Register a customer; returns the 201 document."""
    resp = await client.post("/customers", json=registration(**overrides))
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def confirmation_key(smtp: MailSink, email: str) -> str:
    """The registration key from the confirmation mail to `email`."""
    msg = await smtp.wait_for(lambda m: str(m["To"]).lower() == email.lower())
    return token_from_link(links_in(msg)[0])


async def confirm(client: TestClient, key: str) -> int:
    """POST the key to /customer-confirmation; returns the status."""
    resp = await client.post(
        "/customer-confirmation",
        json={"data": {"type": "customer-confirmation", "attributes": {"registrationKey": key}}},
    )
    return resp.status


async def login(client: TestClient, email: str, password: str = PASSWORD) -> Any:
    """POST /access-tokens; returns the response."""
    return await client.post(
        "/access-tokens",
        json={
            "data": {
                "type": "access-tokens",
                "attributes": {"username": email, "password": password},
            }
        },
    )


async def new_customer(client: TestClient, smtp: MailSink, **overrides: Any) -> Customer:
    """Register, confirm through the mailed link, and log in."""
    email = overrides.pop("email", None) or unique_email()
    doc = await register(client, email=email, **overrides)
    assert await confirm(client, await confirmation_key(smtp, email)) == 204
    resp = await login(client, email, overrides.get("password", PASSWORD))
    assert resp.status == 201, await resp.text()
    attrs = (await resp.json())["data"]["attributes"]
    return Customer(
        reference=doc["data"]["id"],
        email=email,
        password=overrides.get("password", PASSWORD),
        access_token=attrs["accessToken"],
        refresh_token=attrs["refreshToken"],
    )


@pytest.fixture
async def customer(client: TestClient, smtp: MailSink) -> Customer:
    """A registered-and-confirmed customer with a token."""
    return await new_customer(client, smtp)


async def wait_for_mailer(app: web.Application) -> None:
    """Wait until the mailer has handled everything committed so far."""
    await app[SUBSCRIBERS].wait_idle("mailer")


async def tables_containing(conn: asyncpg.Connection, needle: str) -> list[str]:
    """Every table with a row whose text form contains `needle` (case-insensitively)."""
    names = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    found = []
    for row in names:
        table = row["tablename"]
        hits = await conn.fetchval(
            f'SELECT count(*) FROM "{table}" t WHERE t::text ILIKE $1', f"%{needle}%"
        )
        if hits:
            found.append(table)
    return found


async def add_address(client: TestClient, customer: Customer, **overrides: Any) -> str:
    """POST a valid address for `customer` (attribute overrides allowed); returns its id."""
    attributes: dict[str, Any] = {
        "salutation": "Mr",
        "firstName": "John",
        "lastName": "Doe",
        "address1": "Main Street",
        "address2": "1",
        "zipCode": "10115",
        "city": "Berlin",
        "iso2Code": "DE",
        "isDefaultShipping": True,
        "isDefaultBilling": True,
        **overrides,
    }
    resp = await client.post(
        f"/customers/{customer.reference}/addresses",
        json={"data": {"type": "addresses", "attributes": attributes}},
        headers=customer.headers,
    )
    assert resp.status == 201, await resp.text()
    return (await resp.json())["data"]["id"]
