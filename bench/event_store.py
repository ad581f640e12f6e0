"""Event store benchmark: append rate and latency against raw INSERT+COMMIT, read-all, lag.

`python -m bench event_store [--slice=0.25] [--rounds=8]`. Uses DATABASE_URL's server
when set, else a throwaway embedded PostgreSQL; either way a database of its own, dropped
at the end. Runs in about a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from events.crypto import KeyRing
from events.notify import Listener, Waker
from events.store import EventStore
from events.subscribers import RuntimeOptions, SubscriberRuntime, Subscription
from events.types import Event, EventRegistry, NewEvent, RecordedEvent
from service import db
from tests import pg

CONCURRENCY = (1, 4, 16)
BATCHES = (1, 10)

registry = EventRegistry()


@registry.register
@dataclass(frozen=True)
class Noted(Event):
    """An event without personal data."""

    type_name = "BenchNoted"

    sku: str
    quantity: int


@registry.register
@dataclass(frozen=True)
class Contacted(Event):
    """The same shape with one personal field."""

    type_name = "BenchContacted"
    personal = frozenset({"email"})

    sku: str
    email: str


@dataclass
class Run:
    """What one timed run measured."""

    commits: int
    rows: int
    seconds: float
    latencies: list[float]
    cpu_seconds: float  # this (client) process's CPU time during the run

    @staticmethod
    def sum(parts: list[Run]) -> Run:
        """Several runs of one kind as one."""
        return Run(
            sum(p.commits for p in parts),
            sum(p.rows for p in parts),
            sum(p.seconds for p in parts),
            [lat for p in parts for lat in p.latencies],
            sum(p.cpu_seconds for p in parts),
        )

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds

    @property
    def commits_per_second(self) -> float:
        return self.commits / self.seconds


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


# ------------------------------------------------------------------ database


@contextlib.asynccontextmanager
async def _database(server: str) -> AsyncIterator[str]:
    async with pg.schema_database(server) as dsn:
        conn = await db.connect(dsn)
        try:
            # The raw baselines: a plain table, and a copy of the log without its trigger.
            await conn.execute(
                """CREATE TABLE raw_rows (
                       id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                       stream_id text NOT NULL,
                       payload jsonb NOT NULL);
                   CREATE TABLE raw_events (LIKE events INCLUDING ALL);"""
            )
        finally:
            await conn.close()
        yield dsn


# ------------------------------------------------------------------ timed runs

Op = Callable[[int, int], Awaitable[int]]  # (writer, iteration) -> rows written


async def _timed(writers: int, seconds: float, op: Op) -> Run:
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    rows = 0
    commits = 0

    async def writer(w: int) -> None:
        nonlocal rows, commits
        i = 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            written = await op(w, i)  # not `rows += await ...`: that loses updates
            latencies.append(time.perf_counter() - started)
            rows += written
            commits += 1
            i += 1

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    return Run(commits, rows, time.perf_counter() - started, latencies, time.process_time() - cpu)


def _raw_op(conns: list[asyncpg.Connection], tag: str) -> Op:
    """The baseline: one connection per writer, one INSERT per (implicit) transaction."""

    async def op(w: int, i: int) -> int:
        await conns[w].execute(
            "INSERT INTO raw_rows (stream_id, payload) VALUES ($1, $2)",
            f"raw-{tag}-{w}",
            {"sku": "sku-1", "quantity": i},
        )
        return 1

    return op


def _append_op(store: EventStore, tag: str, batch: int, personal: bool) -> Op:
    def event(i: int) -> Event:
        if personal:
            return Contacted(sku="sku-1", email=f"person{i}@example.com")
        return Noted(sku="sku-1", quantity=i)

    async def op(w: int, i: int) -> int:
        events = [NewEvent(event(i)) for _ in range(batch)]
        await store.append(f"bench-{tag}-{w}", events, expected_version=i * batch)
        return batch

    return op


def _raw_pooled_op(pool: asyncpg.Pool, tag: str) -> Op:
    """The same through the pool, as the store reaches the database."""

    async def op(w: int, i: int) -> int:
        async with pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO raw_rows (stream_id, payload) VALUES ($1, $2)",
                f"raw-{tag}-{w}",
                {"sku": "sku-1", "quantity": i},
            )
        return 1

    return op


def _raw_events_op(conns: list[asyncpg.Connection], tag: str) -> Op:
    """A plain INSERT of one event row into a copy of the events table (same indexes)."""

    async def op(w: int, i: int) -> int:
        await conns[w].execute(
            """INSERT INTO raw_events (stream_id, version, event_id, event_type, payload)
               VALUES ($1, $2, $3, $4, $5)""",
            f"raw-{tag}-{w}",
            i + 1,
            uuid.uuid4(),
            "BenchNoted",
            {"sku": "sku-1", "quantity": i},
        )
        return 1

    return op


async def _append_rates(dsn: str, keyring: KeyRing, slice_seconds: float, rounds: int) -> None:
    print(
        f"append vs raw INSERT+COMMIT: {rounds} rounds of {slice_seconds} s slices per kind, "
        "kinds interleaved so a busy machine slows them alike; ratio = events/s / raw rows/s;\n"
        "client µs = this process's CPU per commit; 'raw insert' runs on a connection per "
        "writer, 'pooled' through the pool the store uses;\n'raw insert events' = a plain "
        "INSERT into a copy of the events table (same indexes)"
    )
    print(
        f"{'writers':>7} {'kind':<20} {'events/s':>10} {'commits/s':>10} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'client µs':>10} {'ratio':>6}"
    )
    # (label, events per append, how): raw baselines first, then the store.
    kinds = [("raw insert", 0, "plain"), ("raw insert pooled", 0, "pooled")]
    kinds += [("raw insert events", 0, "events")]
    kinds += [(f"append {b}{p and ' personal'}", b, p) for b in BATCHES for p in ("", "personal")]
    kinds += [("append 1 notifying", 1, "notifying")]
    for writers in CONCURRENCY:
        pool = await db.create_pool(dsn, min_size=writers, max_size=writers + 1)
        conns = [await db.connect(dsn) for _ in range(writers)]
        # As the service runs it: a waker with its own listener, which (one process
        # alone) sends no NOTIFY. 'append 1 notifying' is the store as it runs while
        # another process listens: a NOTIFY after commits, coalesced.
        waker = Waker(pool, presence_seconds=0.5)
        listener = Listener(dsn, waker)
        await listener.start()
        store = EventStore(pool, registry, keyring, waker)
        notifying = EventStore(pool, registry, keyring, Waker(pool))
        runs: dict[str, list[Run]] = {label: [] for label, _, _ in kinds}
        try:
            async with asyncio.timeout(30):
                while not waker.listening:
                    await asyncio.sleep(0.1)
            for rnd in range(rounds):
                for label, batch, flag in kinds:
                    tag = f"{writers}-{rnd}-{label.replace(' ', '-')}"
                    if flag == "plain":
                        op = _raw_op(conns, tag)
                    elif flag == "pooled":
                        op = _raw_pooled_op(pool, tag)
                    elif flag == "events":
                        op = _raw_events_op(conns, tag)
                    elif flag == "notifying":
                        op = _append_op(notifying, tag, batch, personal=False)
                    else:
                        op = _append_op(store, tag, batch, personal=flag == "personal")
                    runs[label].append(await _timed(writers, slice_seconds, op))
        finally:
            await listener.stop()
            await waker.close()
            await notifying.waker.close()  # type: ignore[union-attr]
            await pool.close()
            for conn in conns:
                await conn.close()
        total = {label: Run.sum(parts) for label, parts in runs.items()}
        raw = total["raw insert"].rows_per_second
        for label, _, _ in kinds:
            run = total[label]
            print(
                f"{writers:>7} {label:<20} {run.rows_per_second:>10.0f} "
                f"{run.commits_per_second:>10.0f} {_ms(_percentile(run.latencies, 0.5)):>8} "
                f"{_ms(_percentile(run.latencies, 0.99)):>8} "
                f"{run.cpu_seconds / run.commits * 1e6:>10.0f} {run.rows_per_second / raw:>6.2f}"
            )
        if writers == CONCURRENCY[-1]:
            ratio = total["append 1"].rows_per_second / raw
            print(
                f"{'':>7} target at {writers} writers, 1-event appends >= 0.70x raw: {ratio:.2f}x; "
                f"{ratio / (total['raw insert pooled'].rows_per_second / raw):.2f}x the pooled "
                f"raw loop; {ratio / (total['raw insert events'].rows_per_second / raw):.2f}x a "
                "raw INSERT into a copy of the events table; "
                f"{total['append 1 notifying'].rows_per_second / raw:.2f}x while another "
                "process listens (a NOTIFY after commits)"
            )


# ------------------------------------------------------------------ reading


async def _read_all_rate(dsn: str, keyring: KeyRing, seconds: float) -> None:
    pool = await db.create_pool(dsn, min_size=1, max_size=2)
    store = EventStore(pool, registry, keyring)
    try:
        total = await pool.fetchval("SELECT count(*) FROM events")
        personal = await pool.fetchval("SELECT count(*) FROM events WHERE payload ? '$pii'")
        cursor: tuple[int, int] | None = None
        read = 0
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()
        while time.perf_counter() < deadline:
            batch = await store.read_all(after=cursor, limit=1000)
            if not batch:
                break
            read += len(batch)
            cursor = (batch[-1].transaction_id, batch[-1].position)
        elapsed = time.perf_counter() - started
    finally:
        await pool.close()
    print(
        f"read_all (pages of 1000, decoded; {personal}/{total} events sealed): "
        f"{read} events in {elapsed:.2f} s = {read / elapsed:.0f} events/s"
    )


# ------------------------------------------------------------------ lag


async def _lag(dsn: str, keyring: KeyRing, events: int, load_writers: int) -> None:
    """Commit-to-handler lag for a follower woken in-process and one woken by NOTIFY."""
    pool = await db.create_pool(dsn, min_size=2, max_size=4 + load_writers)
    waker = Waker(pool)
    store = EventStore(pool, registry, keyring, waker)
    # A second "process": its own pool and waker, woken only through LISTEN/NOTIFY.
    far_pool = await db.create_pool(dsn, min_size=1, max_size=2)
    far_waker = Waker(None)
    far_store = EventStore(far_pool, registry, keyring, far_waker)
    listener = Listener(dsn, far_waker)
    await listener.start()
    await listener.wait_connected()

    committed: dict[uuid.UUID, float] = {}
    handled: dict[str, dict[uuid.UUID, float]] = {"in-process wake": {}, "via NOTIFY": {}}
    done: dict[str, asyncio.Event] = {k: asyncio.Event() for k in handled}
    tag = uuid.uuid4().hex[:8]

    def follower(kind: str) -> Callable[[RecordedEvent], Awaitable[None]]:
        async def handle(event: RecordedEvent) -> None:
            # A follower may run before the writer has resumed from append():
            # remember when, and pair the times up at the end.
            if event.stream_id == f"lag-{tag}":
                handled[kind][event.event_id] = time.perf_counter()
                if len(handled[kind]) == events:
                    done[kind].set()

        return handle

    # A long poll interval: only wake-ups can keep the lag small.
    options = RuntimeOptions(poll_seconds=5.0, batch_size=500)
    near = SubscriberRuntime(
        store,
        lambda: db.connect(dsn),
        waker,
        [Subscription(f"lag-near-{tag}", follower("in-process wake"), ["BenchNoted"])],
        options,
    )
    far = SubscriberRuntime(
        far_store,
        lambda: db.connect(dsn),
        far_waker,
        [Subscription(f"lag-far-{tag}", follower("via NOTIFY"), ["BenchNoted"])],
        options,
    )
    stop_load = asyncio.Event()

    async def load(w: int) -> None:
        version = 0
        while not stop_load.is_set():
            await store.append(
                f"load-{tag}-{w}", [NewEvent(Contacted(sku="x", email="a@b.c"))], version
            )
            version += 1

    # Followers start at the head: this measures lag, not catching up on the runs above.
    await pool.execute(
        """INSERT INTO subscriber_checkpoints (name, transaction_id, position)
           SELECT n, e.transaction_id, e.position
           FROM unnest($1::text[]) AS n,
                (SELECT transaction_id, position FROM events
                 ORDER BY transaction_id DESC, position DESC LIMIT 1) AS e""",
        [f"lag-near-{tag}", f"lag-far-{tag}"],
    )
    try:
        await near.start()
        await far.start()
        await near.wait_idle(f"lag-near-{tag}", timeout=60)
        await far.wait_idle(f"lag-far-{tag}", timeout=60)
        loaders = [asyncio.create_task(load(w)) for w in range(load_writers)]
        for i in range(events):
            new = NewEvent(Noted(sku="lag", quantity=i))
            await store.append(f"lag-{tag}", [new], i)
            committed[new.event_id] = time.perf_counter()
            await asyncio.sleep(0.002)  # pacing: one event every ~2 ms, not a burst
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in done.values())), timeout=60)
        stop_load.set()
        await asyncio.gather(*loaders)
    finally:
        await near.stop()
        await far.stop()
        await listener.stop()
        await waker.close()
        await pool.close()
        await far_pool.close()
    for kind, times in handled.items():
        # From append() returning (the commit acknowledged) to the handler; a handler
        # may even run first (it was woken before the writer resumed): that is 0.
        values = [max(0.0, times[i] - committed[i]) for i in committed]
        print(
            f"commit-to-subscriber lag, {kind}, {load_writers} background writers: "
            f"p50 {_ms(_percentile(values, 0.5))} ms, p99 {_ms(_percentile(values, 0.99))} ms "
            f"(target < 50), max {_ms(max(values))} ms ({len(values)} events)"
        )


# ------------------------------------------------------------------ main


async def _main(slice_seconds: float, rounds: int) -> None:
    keyring = KeyRing(os.urandom(32))
    with pg.server_dsn() as server:
        async with _database(server) as dsn:
            conn = await asyncpg.connect(dsn)
            try:
                print(
                    "server:",
                    await conn.fetchval("SHOW server_version"),
                    "| synchronous_commit",
                    await conn.fetchval("SHOW synchronous_commit"),
                    "| fsync",
                    await conn.fetchval("SHOW fsync"),
                )
            finally:
                await conn.close()
            await _append_rates(dsn, keyring, slice_seconds, rounds)
            await _read_all_rate(dsn, keyring, 10.0)
            await _lag(dsn, keyring, events=500, load_writers=0)
            await _lag(dsn, keyring, events=500, load_writers=4)


def main(argv: list[str]) -> None:
    """Run the benchmark and print its figures."""
    slice_seconds, rounds = 0.25, 8
    for arg in argv:
        if arg.startswith("--slice="):
            slice_seconds = float(arg.split("=", 1)[1])
        if arg.startswith("--rounds="):
            rounds = int(arg.split("=", 1)[1])
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    started = time.perf_counter()
    asyncio.run(_main(slice_seconds, rounds))
    print(f"total {time.perf_counter() - started:.1f} s")
