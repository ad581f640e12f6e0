"""Waking followers after commits: coalesced NOTIFY out, LISTEN in."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Collection

import asyncpg

CHANNEL = "glue_events"
# The payload kind a Listener sends to say it listens (see Waker.heard).
HELLO = "?"
log = logging.getLogger(__name__)


class Waker:
    """Wakes followers in this process at once and in other processes via NOTIFY.

    NOTIFY inside an append transaction takes a database-wide lock at commit and
    serialises every writer, so it is sent from here, after commit, and coalesced:
    however many appends commit while one NOTIFY is in flight, or in the
    `min_interval` after it, one more follows. A lone commit is announced at once;
    a steady stream costs at most one NOTIFY per interval instead of one per append
    (about half an append's client CPU each), and other processes' followers learn
    of it at most that much later.

    With a Listener of its own connected, it sends NOTIFYs only while some other
    process listens: every Listener says hello when it starts and every
    `presence_seconds` after, and a process that heard nothing from any other for
    three times that stays silent (one process alone, the usual deployment, pays no
    NOTIFY at all). A newcomer's hello is answered at once with a NOTIFY for every
    type, covering what was committed before it was known. Without a connected
    Listener it cannot know, so it always sends.
    """

    def __init__(
        self,
        pool: asyncpg.Pool | None,
        min_interval: float = 0.002,
        presence_seconds: float = 5.0,
    ) -> None:
        self._pool = pool
        self._min_interval = min_interval
        self.presence_seconds = presence_seconds
        # Other processes' origins, with when they were last heard (loop time).
        self._others: dict[str, float] = {}
        # Whether our own Listener is connected (so that silence means: nobody else).
        self.listening = False
        # Each follower may name the event types it reads; None: every type.
        self._waiters: dict[asyncio.Event, frozenset[str] | None] = {}
        self._sending: asyncio.Task[None] | None = None
        self._again = False
        # Event types committed since the last NOTIFY; None once any commit was untyped.
        self._pending: set[str] | None = set()
        # Tags our own NOTIFYs, so this process's Listener does not wake us twice.
        self.origin = uuid.uuid4().hex[:12]

    def waiter(self, types: Collection[str] | None = None) -> asyncio.Event:
        """An event set on wake-ups for `types` (all when None); cleared before reading."""
        event = asyncio.Event()
        self._waiters[event] = frozenset(types) if types else None
        return event

    def forget(self, event: asyncio.Event) -> None:
        """Stop waking a follower."""
        self._waiters.pop(event, None)

    def wake_local(self, types: Collection[str] | None = None) -> None:
        """Wake followers in this process whose types were committed (all when None)."""
        for event, wanted in self._waiters.items():
            if types is None or wanted is None or not wanted.isdisjoint(types):
                event.set()

    def poke(self, types: Collection[str] | None = None) -> None:
        """Events of `types` (None: unknown) were committed: wake their followers, sending
        at most one NOTIFY at a time. A follower that filters for other types (the mailer
        during a run of profile edits) is not woken to read nothing."""
        self.wake_local(types)
        if self._pool is None or (self.listening and not self.heard_from_others()):
            return
        if types is None or self._pending is None:
            self._pending = None
        else:
            self._pending.update(types)
        if self._sending is not None and not self._sending.done():
            self._again = True
            return
        self._sending = asyncio.get_running_loop().create_task(self._send())

    def heard(self, origin: str) -> bool:
        """Another process (`origin`) showed it listens; True when it was not known."""
        known = self.heard_from_others() and origin in self._others
        self._others[origin] = asyncio.get_running_loop().time()
        return not known

    def heard_from_others(self) -> bool:
        """Whether another process said it listens within three presence periods."""
        if not self._others:
            return False
        horizon = asyncio.get_running_loop().time() - 3 * self.presence_seconds
        for origin in [o for o, seen in self._others.items() if seen < horizon]:
            del self._others[origin]
        return bool(self._others)

    def _take_payload(self) -> str:
        pending, self._pending = self._pending, set()
        return f"{self.origin}|" + ("*" if pending is None else ",".join(sorted(pending)))

    async def _send(self) -> None:
        try:
            # One connection for a whole burst, not one acquire per NOTIFY.
            async with self._pool.acquire() as conn:  # type: ignore[union-attr]
                while True:
                    self._again = False
                    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, self._take_payload())
                    await asyncio.sleep(self._min_interval)
                    if not self._again:
                        return
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # Followers fall back to their bounded poll; nothing is lost.
            log.warning("notify failed: %s", exc)

    async def close(self) -> None:
        """Wait for an in-flight NOTIFY."""
        if self._sending is not None:
            with contextlib.suppress(Exception):
                await self._sending


class Listener:
    """Holds one connection LISTENing for commits made by other processes."""

    def __init__(self, dsn: str, waker: Waker) -> None:
        self._dsn = dsn
        self._waker = waker
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def start(self) -> None:
        """Start listening (reconnecting in the background if the database goes away)."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                self._conn = await asyncpg.connect(self._dsn)
                await self._conn.add_listener(CHANNEL, self._on_notify)
                self._connected.set()
                # Something may have been committed while we were not listening.
                self._waker.wake_local()
                await self._listen(self._conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("listener lost its connection: %s", exc)
            finally:
                # Deaf, we cannot tell whether others listen: notify them regardless.
                self._waker.listening = False
            self._connected.clear()
            await asyncio.sleep(1.0)

    async def _listen(self, conn: asyncpg.Connection) -> None:
        """Say hello every `presence_seconds` while the connection lives."""
        loop = asyncio.get_running_loop()
        presence = self._waker.presence_seconds
        # Every other listener says hello within one period: until then, silence does
        # not yet mean that nobody else listens.
        trusted_at = loop.time() + 1.5 * presence
        hello_due = 0.0
        while not conn.is_closed():
            now = loop.time()
            if now >= hello_due:
                payload = f"{self._waker.origin}|{HELLO}"
                await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
                hello_due = now + presence
            self._waker.listening = now >= trusted_at
            await asyncio.sleep(min(1.0, presence / 2))

    async def wait_connected(self, timeout: float = 10.0) -> None:
        """Wait until the LISTEN is in place (commits from then on wake this process)."""
        await asyncio.wait_for(self._connected.wait(), timeout)

    def _on_notify(self, conn: object, pid: int, channel: str, payload: str) -> None:
        origin, _, types = payload.partition("|")
        if origin == self._waker.origin:
            return  # our own commits woke our followers already
        if types == HELLO:
            # Only a hello shows a listener: a process may notify without listening.
            if self._waker.heard(origin):
                # What we committed before we knew of it was never announced to it.
                self._waker.poke()
            return
        self._waker.wake_local(None if types in ("", "*") else types.split(","))

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()
