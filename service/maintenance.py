"""CLI entry for `migrate`, `replay` and `verify` (replay/verify: projections/rebuild.py)."""

from __future__ import annotations

import sys

from service.config import Settings


async def main(command: str, dsn: str, settings: Settings) -> int:
    """Run one maintenance command; returns the exit status."""
    from service import db

    conn = await db.connect(dsn)
    try:
        await db.apply_schema(conn)
    finally:
        await conn.close()
    if command == "migrate":
        print("schema applied", file=sys.stderr)
        return 0
    from projections import rebuild

    return await rebuild.run(command, dsn, settings)
