"""The floor the service is measured against: the least an aiohttp app must do per scenario.

Reads verify the JWT and run one SELECT by key; writes verify the JWT and run one INSERT and
one UPDATE in a transaction; registration and login add the same argon2 work the service does.
`python -m bench.baseline` serves it (PORT, DATABASE_URL, DATA_DIR, ARGON2_* as the service).
Not a benchmark module of its own: bench/fullstack.py starts it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

from service import db, keys
from service.auth.passwords import PasswordHasher
from service.auth.tokens import InvalidToken, TokenService
from service.clock import Clock
from service.config import Settings
from service.jsonapi import CONTENT_TYPE

POOL: web.AppKey[asyncpg.Pool] = web.AppKey("pool")
TOKENS: web.AppKey[TokenService] = web.AppKey("tokens")
HASHER: web.AppKey[PasswordHasher] = web.AppKey("hasher")

SCHEMA = """
CREATE TABLE IF NOT EXISTS baseline_log (
    id bigserial PRIMARY KEY, ref text NOT NULL, payload jsonb NOT NULL,
    at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS baseline_profiles (
    ref text PRIMARY KEY, email text NOT NULL, first_name text, password_hash text,
    updated_at timestamptz NOT NULL DEFAULT now());
"""


def _json(doc: object, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(doc, separators=(",", ":")), status=status, content_type=CONTENT_TYPE
    )


def _subject(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    try:
        principal = request.app[TOKENS].verify(header.removeprefix("Bearer ").strip())
    except InvalidToken:
        raise web.HTTPUnauthorized() from None
    return principal.subject


async def get_customer(request: web.Request) -> web.Response:
    """JWT + one SELECT by key."""
    _subject(request)
    row = await request.app[POOL].fetchrow(
        "SELECT * FROM customers WHERE customer_reference = $1", request.match_info["ref"]
    )
    if row is None:
        raise web.HTTPNotFound()
    attrs = {"firstName": row["first_name"], "lastName": row["last_name"], "email": row["email"]}
    return _json(
        {"data": {"type": "customers", "id": row["customer_reference"], "attributes": attrs}}
    )


async def list_addresses(request: web.Request) -> web.Response:
    """JWT + one SELECT by key."""
    _subject(request)
    rows = await request.app[POOL].fetch(
        "SELECT * FROM addresses WHERE customer_reference = $1", request.match_info["ref"]
    )
    data = [
        {"type": "addresses", "id": str(r["uuid"]), "attributes": {"city": r["city"]}} for r in rows
    ]
    return _json({"data": data})


async def patch_customer(request: web.Request) -> web.Response:
    """JWT + one INSERT and one UPDATE in a transaction."""
    ref = _subject(request)
    attrs = (await request.json())["data"]["attributes"]
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await conn.execute("INSERT INTO baseline_log (ref, payload) VALUES ($1, $2)", ref, attrs)
        await conn.execute(
            """INSERT INTO baseline_profiles (ref, email, first_name) VALUES ($1, '', $2)
               ON CONFLICT (ref) DO UPDATE SET first_name = $2, updated_at = now()""",
            ref,
            attrs.get("firstName"),
        )
    return _json({"data": {"type": "customers", "id": ref, "attributes": attrs}})


async def register(request: web.Request) -> web.Response:
    """argon2 hash + one INSERT and one UPDATE in a transaction."""
    attrs = (await request.json())["data"]["attributes"]
    password_hash = await request.app[HASHER].hash(attrs["password"])
    ref = uuid.uuid4().hex
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await conn.execute("INSERT INTO baseline_log (ref, payload) VALUES ($1, $2)", ref, attrs)
        await conn.execute(
            """INSERT INTO baseline_profiles (ref, email, password_hash) VALUES ($1, $2, $3)
               ON CONFLICT (ref) DO UPDATE SET password_hash = $3""",
            ref,
            attrs["email"],
            password_hash,
        )
    return _json({"data": {"type": "customers", "id": ref, "attributes": {}}}, status=201)


async def login(request: web.Request) -> web.Response:
    """One SELECT by key + argon2 verify + a signed token."""
    attrs = (await request.json())["data"]["attributes"]
    row = await request.app[POOL].fetchrow(
        """SELECT c.customer_reference, c.password_hash, c.token_generation
           FROM customer_emails e JOIN customers c USING (customer_reference)
           WHERE e.email_lower = $1""",
        attrs["username"].lower(),
    )
    if row is None or not await request.app[HASHER].verify(row["password_hash"], attrs["password"]):
        raise web.HTTPUnauthorized()
    token = request.app[TOKENS].issue_customer(row["customer_reference"], row["token_generation"])
    return _json({"data": {"type": "access-tokens", "attributes": {"accessToken": token}}}, 201)


async def ready(request: web.Request) -> web.Response:
    """200 once the pool is up."""
    await request.app[POOL].fetchval("SELECT 1")
    return _json({"status": "ok"})


def make_app(settings: Settings, dsn: str) -> web.Application:
    """The baseline application."""
    app = web.Application()
    app[TOKENS] = TokenService(keys.signing_key_pem(settings), settings.access_token_ttl, Clock())

    async def resources(app: web.Application) -> AsyncIterator[None]:
        app[POOL] = await db.create_pool(dsn, settings.db_pool_min, settings.db_pool_max)
        await app[POOL].execute(SCHEMA)
        app[HASHER] = PasswordHasher(
            settings.argon2_memory_kib, settings.argon2_time_cost, settings.hash_workers
        )
        yield
        app[HASHER].close()
        await app[POOL].close()

    app.cleanup_ctx.append(resources)
    r = app.router
    r.add_get("/health/ready", ready)
    r.add_get("/customers/{ref}", get_customer)
    r.add_patch("/customers/{ref}", patch_customer)
    r.add_get("/customers/{ref}/addresses", list_addresses)
    r.add_post("/customers", register)
    r.add_post("/access-tokens", login)
    return app


async def _serve() -> None:
    settings = Settings.from_env()
    assert settings.database_url is not None, "DATABASE_URL is required"
    runner = web.AppRunner(make_app(settings, settings.database_url), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.port).start()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    """Serve the baseline until SIGTERM."""
    if os.environ.get("BASELINE_SERVE") != "1":
        print("bench/baseline.py is started by `python -m bench fullstack`")
        return
    import uvloop

    uvloop.run(_serve())


if __name__ == "__main__":
    os.environ["BASELINE_SERVE"] = "1"
    main()
