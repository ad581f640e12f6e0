"""Throwaway PostgreSQL databases for tests: an embedded cluster, or DATABASE_URL's server."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg


def with_database(dsn: str, name: str) -> str:
    """The same DSN pointing at another database."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


@contextmanager
def server_dsn() -> Iterator[str]:
    """DATABASE_URL when set, else a throwaway embedded cluster under the system temp folder."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    from service.embedded import start_embedded, stop_embedded

    root = Path(tempfile.mkdtemp(prefix="glue-test-pg-"))
    server, dsn = start_embedded(root, throwaway=True)
    try:
        yield dsn
    finally:
        stop_embedded(server)


async def create_database(server: str, template: str | None = None) -> str:
    """Create a uniquely named database (optionally from a template); returns its DSN."""
    name = f"glue_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(server)
    try:
        clause = f" TEMPLATE {template}" if template else ""
        await conn.execute(f"CREATE DATABASE {name}{clause}")
    finally:
        await conn.close()
    return with_database(server, name)


def database_name(dsn: str) -> str:
    """The database a DSN names."""
    return urlsplit(dsn).path.lstrip("/")


async def drop_database(server: str, dsn: str) -> None:
    """Drop a test database, disconnecting whoever is still on it."""
    name = database_name(dsn)
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


@asynccontextmanager
async def schema_database(server: str) -> AsyncIterator[str]:
    """A throwaway database holding the service's schema (for tests and benchmarks)."""
    from service import db

    dsn = await create_database(server)
    try:
        conn = await db.connect(dsn)
        try:
            await db.apply_schema(conn)
        finally:
            await conn.close()
        yield dsn
    finally:
        await drop_database(server, dsn)
