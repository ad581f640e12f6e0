"""Scratch copies of read-model tables: create, compare with the live ones, swap in."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

_SHOWN = 20  # differences listed per table; the count covers the rest


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    """schema.table, quoted."""
    return f"{ident(schema)}.{ident(table)}"


async def create(conn: asyncpg.Connection, scratch: str, live: str, tables: Sequence[str]) -> None:
    """(Re)create the scratch schema with an empty twin of each live table.

    Indexes and key constraints are recreated under their live names, so after a
    swap the tables look exactly as schema.sql made them (and its
    `CREATE INDEX IF NOT EXISTS` finds them). Privileges granted on a live table
    are granted on its twin too: a reporting role that reads the read models keeps
    reading them after a replay.
    """
    await conn.execute(
        f"DROP SCHEMA IF EXISTS {ident(scratch)} CASCADE; CREATE SCHEMA {ident(scratch)}"
    )
    for table in tables:
        source, target = qualified(live, table), qualified(scratch, table)
        await conn.execute(f"CREATE TABLE {target} (LIKE {source} INCLUDING ALL EXCLUDING INDEXES)")
        constraints = await conn.fetch(
            """SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint
               WHERE conrelid = $1::regclass AND contype IN ('p', 'u', 'x') ORDER BY conname""",
            source,
        )
        for c in constraints:
            await conn.execute(
                f"ALTER TABLE {target} ADD CONSTRAINT {ident(c['conname'])} {c['def']}"
            )
        indexes = await conn.fetch(
            """SELECT pg_get_indexdef(i.indexrelid) AS def,
                      format('%I.%I', n.nspname, c.relname) AS on_table
               FROM pg_index i
               JOIN pg_class c ON c.oid = i.indrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE i.indrelid = $1::regclass
                 AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
               ORDER BY i.indexrelid""",
            source,
        )
        for index in indexes:
            definition: str = index["def"]
            on_live = f" ON {index['on_table']} USING "
            if on_live not in definition:
                raise RuntimeError(f"cannot retarget index definition: {definition}")
            await conn.execute(definition.replace(on_live, f" ON {target} USING ", 1))
        await _copy_grants(conn, source, target)


async def _copy_grants(conn: asyncpg.Connection, source: str, target: str) -> None:
    grants = await conn.fetch(
        """SELECT a.privilege_type, a.is_grantable,
                  CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                       ELSE quote_ident(pg_get_userbyid(a.grantee)) END AS grantee
           FROM pg_class c, aclexplode(c.relacl) a
           WHERE c.oid = $1::regclass AND a.grantee <> c.relowner
           ORDER BY 3, 1""",
        source,
    )
    for g in grants:
        option = " WITH GRANT OPTION" if g["is_grantable"] else ""
        await conn.execute(f"GRANT {g['privilege_type']} ON {target} TO {g['grantee']}{option}")


async def drop(conn: asyncpg.Connection, schema: str) -> None:
    """Drop a scratch (or retired) schema and everything in it."""
    await conn.execute(f"DROP SCHEMA IF EXISTS {ident(schema)} CASCADE")


async def swap(
    conn: asyncpg.Connection, scratch: str, live: str, retired: str, tables: Sequence[str]
) -> None:
    """Move the live tables to `retired` and the scratch tables into their place.

    Run inside the caller's transaction, which must hold ACCESS EXCLUSIVE locks
    on the live tables: readers then see the old tables or the new, never a mix.
    """
    await conn.execute(f"DROP SCHEMA IF EXISTS {ident(retired)} CASCADE")
    await conn.execute(f"CREATE SCHEMA {ident(retired)}")
    for table in tables:
        await conn.execute(f"ALTER TABLE {qualified(live, table)} SET SCHEMA {ident(retired)}")
        await conn.execute(f"ALTER TABLE {qualified(scratch, table)} SET SCHEMA {ident(live)}")


@dataclass(frozen=True)
class Difference:
    """A row that is not the same in a live table and in its rebuild from the log."""

    table: str
    key: dict[str, Any]
    live: dict[str, Any] | None
    rebuilt: dict[str, Any] | None

    def describe(self) -> str:
        """One line naming the table, the row and what differs."""
        key = ", ".join(f"{k}={v}" for k, v in self.key.items()) or "(no primary key)"
        if self.rebuilt is None:
            return f"{self.table} [{key}]: in the live table, absent from the rebuild from the log"
        if self.live is None:
            return f"{self.table} [{key}]: rebuilt from the log, absent from the live table"
        changed = [
            f"{name} live={self.live.get(name)!r} rebuilt={self.rebuilt.get(name)!r}"
            for name in self.rebuilt
            if self.live.get(name) != self.rebuilt.get(name)
        ]
        return f"{self.table} [{key}]: " + "; ".join(changed)


@dataclass(frozen=True)
class TableDifferences:
    """The differences found in one table: a count and the first few."""

    table: str
    count: int
    shown: list[Difference]


async def _primary_key(conn: asyncpg.Connection, table: str) -> list[str]:
    rows = await conn.fetch(
        """SELECT a.attname FROM pg_index i
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
           WHERE i.indrelid = $1::regclass AND i.indisprimary
           ORDER BY array_position(i.indkey::int2[], a.attnum)""",
        table,
    )
    return [r["attname"] for r in rows]


def _json(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    return json.loads(value) if isinstance(value, str) else dict(value)


async def compare(
    conn: asyncpg.Connection, scratch: str, live: str, table: str
) -> TableDifferences:
    """Rows of `table` that differ between the live schema and the scratch one.

    Rows are matched on the primary key (tables without one as multisets) and
    compared as JSON, which names every column and treats NULLs as equal.
    """
    source, rebuilt = qualified(live, table), qualified(scratch, table)
    pk = await _primary_key(conn, source)
    if pk:
        on = " AND ".join(f"l.{ident(c)} = s.{ident(c)}" for c in pk)
        diff = f"""SELECT to_jsonb(l) AS live, to_jsonb(s) AS rebuilt
                   FROM {source} l FULL JOIN {rebuilt} s ON {on}
                   WHERE to_jsonb(l) IS DISTINCT FROM to_jsonb(s)"""
    else:
        diff = f"""SELECT to_jsonb(x) AS live, NULL::jsonb AS rebuilt
                   FROM (TABLE {source} EXCEPT ALL TABLE {rebuilt}) x
                   UNION ALL
                   SELECT NULL::jsonb, to_jsonb(x) FROM (TABLE {rebuilt} EXCEPT ALL TABLE {source}) x"""
    rows = await conn.fetch(
        f"WITH d AS ({diff}) SELECT (SELECT count(*) FROM d) AS n, * FROM d LIMIT {_SHOWN}"
    )
    shown = []
    for row in rows:
        before, after = _json(row["live"]), _json(row["rebuilt"])
        either = before if before is not None else after or {}
        shown.append(Difference(table, {c: either.get(c) for c in pk}, before, after))
    return TableDifferences(table, rows[0]["n"] if rows else 0, shown)
