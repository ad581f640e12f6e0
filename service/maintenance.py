"""CLI entry for `migrate`, `replay` and `verify` (the rebuild itself: projections/rebuild.py).

`replay` folds the log in REPLAY_WORKERS processes (default: one per core, at most 4).
"""

from __future__ import annotations

import functools
import os
import sys

from events.crypto import KeyRing
from events.customer import registry
from events.store import EventStore
from service.config import Settings

# Exit statuses of `verify` (and `replay`): differences found, or another rebuild running.
DIFFERENT = 1
BUSY = 2


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
    return await rebuild(command, dsn, settings)


async def rebuild(command: str, dsn: str, settings: Settings, batch_size: int = 5000) -> int:
    """`replay` swaps freshly rebuilt read models in; `verify` compares them with the live ones."""
    from projections import inline_projections
    from projections.bulk import Parallel
    from projections.rebuild import Rebuild, RebuildBusy
    from service import db, keys
    from service.progress import ProgressBar

    master = keys.master_key(settings)
    pool = await db.create_pool(dsn, min_size=1, max_size=2)
    store = EventStore(pool, registry, KeyRing(master))
    workers = int(os.environ.get("REPLAY_WORKERS") or min(os.cpu_count() or 1, 4))
    bar = ProgressBar(command)
    job = Rebuild(
        store,
        inline_projections,
        lambda: db.connect(dsn),
        batch_size=batch_size,
        progress=bar,
        parallel=Parallel(
            workers,
            functools.partial(db.connect, dsn),
            functools.partial(decoding_store, master),
        ),
    )
    try:
        if command == "replay":
            await job.replay()
            print(bar.finish(), file=sys.stderr)
            if job.stale:
                print(
                    f"replay: no current mirror for {', '.join(job.stale)} "
                    "(projections/mirrors/); replayed through the handlers instead",
                    file=sys.stderr,
                )
            print("replay: every read model rebuilt from the log and swapped in", file=sys.stderr)
            return 0
        differences = await job.verify()
        print(bar.finish(), file=sys.stderr)
    except RebuildBusy as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return BUSY
    finally:
        await pool.close()
    for table in differences:
        print(f"{table.table}: {table.count} row(s) differ from the log")
        for difference in table.shown:
            print(f"  {difference.describe()}")
        if table.count > len(table.shown):
            print(f"  … and {table.count - len(table.shown)} more")
    if differences:
        return DIFFERENT
    print("verify: every read model equals a fresh fold of the log", file=sys.stderr)
    return 0


def decoding_store(master_key: bytes) -> EventStore:
    """A store that only decodes rows (no pool): what a replay worker process needs."""
    return EventStore(None, registry, KeyRing(master_key))  # type: ignore[arg-type]
