"""The connection pool and the schema."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from events import jsoncodec

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.sql"
SCHEMA_VERSION = 2


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, encoder=jsoncodec.dumps, decoder=jsoncodec.loads, schema="pg_catalog"
        )


async def connect(dsn: str) -> asyncpg.Connection:
    """One connection configured like the pool's."""
    conn = await asyncpg.connect(dsn, server_settings=_SERVER_SETTINGS)
    await _init_connection(conn)
    return conn


# A session left idle inside a transaction would hold back every feed reader
# (they fence on the oldest running transaction), so the server ends it.
_SERVER_SETTINGS = {
    "application_name": "glue-customers",
    "idle_in_transaction_session_timeout": "15000",
}


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's session reset (RESET ALL, UNLISTEN *, advisory
    unlock...): it costs a round trip per acquire, a third of a one-statement
    append. Pooled connections carry no session state here: advisory locks, LISTEN
    and SET live on dedicated connections (subscribers, listener, rebuild). An open
    transaction is still rolled back on release."""


async def create_pool(dsn: str, min_size: int = 2, max_size: int = 20) -> asyncpg.Pool:
    """A pool whose connections speak JSON for json/jsonb."""
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        server_settings=_SERVER_SETTINGS,
        command_timeout=30,
    )


async def apply_schema(conn: asyncpg.Connection) -> None:
    """Apply schema.sql (idempotent), one process at a time."""
    sql = SCHEMA_FILE.read_text()
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('glue-customers-schema'))")
        await conn.execute(sql)


async def schema_version(conn: asyncpg.Connection | asyncpg.Pool) -> int | None:
    """The newest applied schema version, or None before the first migration."""
    try:
        return await conn.fetchval("SELECT max(version) FROM schema_migrations")
    except asyncpg.UndefinedTableError:
        return None
