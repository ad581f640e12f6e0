"""A connection stand-in that runs projector statements in batches, for rebuilds.

Projecting a log of a million events one statement per round trip is bound by
latency, not by work. While a rebuild projects, handlers get a BatchedConnection:
each `execute` becomes `EXECUTE <prepared>(<literals>)` appended to a script,
and the script goes to the server in one round trip (simple query protocol).
The statements, their order and their transaction are exactly what the handlers
asked for, so the tables come out the same; only the wire format changes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import asyncpg

_MAX_STATEMENTS = 2000
_MAX_BYTES = 1 << 20


def literal(value: Any) -> str | None:
    """`value` as a quoted SQL literal in PostgreSQL's text input form, or None when
    it has no unambiguous one (the statement then runs with bound parameters).

    The literal is untyped ('…'), so the server parses it with the parameter's
    type exactly as it parses a parameter bound in text format. Quoting is safe
    because the session runs with standard_conforming_strings on: inside '…'
    only the quote itself is special.
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, int | float | Decimal | uuid.UUID):
        text = str(value)
    elif isinstance(value, datetime):
        text = (value.astimezone(UTC) if value.tzinfo else value).isoformat()
    elif isinstance(value, date | time):
        text = value.isoformat()
    elif isinstance(value, bytes | bytearray | memoryview):
        text = "\\x" + bytes(value).hex()
    elif isinstance(value, dict):
        text = json.dumps(value, separators=(",", ":"))
    else:
        return None
    return "'" + text.replace("'", "''") + "'"


class NoStatus:
    """What a batched `execute` returns: its status is not known until the batch runs,
    so a handler that branches on it would silently project differently here."""

    def _refuse(self, *_: object) -> bool:
        raise RuntimeError(
            "a projector used execute()'s status; under a rebuild statements run in "
            "batches and it is unknown. Express the condition in SQL instead."
        )

    __eq__ = __ne__ = __bool__ = __contains__ = _refuse  # type: ignore[assignment]
    __hash__ = None  # type: ignore[assignment]

    def __getattr__(self, name: str) -> object:
        return self._refuse()


NO_STATUS = NoStatus()


class BatchedConnection:
    """Queues `execute` calls as EXECUTEs of server-side prepared statements.

    Reads (`fetch*`) send the queue first, so a handler that reads sees every
    write queued before it. `execute`'s status is not known yet: using it raises.
    """

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._names: dict[str, str] = {}
        self._script: list[str] = []
        self._size = 0

    @staticmethod
    async def prepare_session(conn: asyncpg.Connection) -> None:
        """Settings the literals rely on; call once on the connection."""
        await conn.execute("SET standard_conforming_strings = on; SET TimeZone = 'UTC'")

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> Any:
        """Queue one statement (sent at the next read, flush, or when the queue is full)."""
        literals = [literal(a) for a in args]
        if any(lit is None for lit in literals):
            await self.flush()
            return await self._conn.execute(query, *args, timeout=timeout)
        name = self._names.get(query)
        if name is None:
            name = await self._prepare(query)
        statement = f"EXECUTE {name}({','.join(literals)})" if args else f"EXECUTE {name}"  # type: ignore[arg-type]
        self._script.append(statement)
        self._size += len(statement)
        if len(self._script) >= _MAX_STATEMENTS or self._size >= _MAX_BYTES:
            await self.flush()
        return NO_STATUS

    async def executemany(self, query: str, args: Iterable[Sequence[Any]]) -> None:
        """Queue the statement once per argument tuple."""
        for one in args:
            await self.execute(query, *one)

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        """Send the queue, then read."""
        await self.flush()
        return await self._conn.fetch(query, *args)

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        """Send the queue, then read one row."""
        await self.flush()
        return await self._conn.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any, column: int = 0) -> Any:
        """Send the queue, then read one value."""
        await self.flush()
        return await self._conn.fetchval(query, *args, column=column)

    async def flush(self) -> None:
        """Run every queued statement, in order, in one round trip."""
        if not self._script:
            return
        script = ";\n".join(self._script)
        self._script.clear()
        self._size = 0
        await self._conn.execute(script)

    def discard(self) -> None:
        """Drop the queue unsent (its transaction was rolled back); prepared statements,
        which belong to the session and not to the transaction, stay."""
        self._script.clear()
        self._size = 0

    async def _prepare(self, query: str) -> str:
        # Prepared once per session; the server infers the parameter types from
        # the statement as it does for a driver's own prepared statements.
        name = f"glue_rebuild_{len(self._names) + 1}"
        await self.flush()
        await self._conn.execute(f"PREPARE {name} AS {query.strip().rstrip(';')}")
        self._names[query] = name
        return name

    async def deallocate(self) -> None:
        """Forget the prepared statements (the connection stays usable)."""
        self.discard()
        # One by one: DEALLOCATE ALL would also drop the driver's own statements.
        for name in self._names.values():
            await self._conn.execute(f"DEALLOCATE {name}")
        self._names.clear()
