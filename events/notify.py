"""Waking followers after commits: coalesced NOTIFY out, LISTEN in."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

CHANNEL = "glue_events"
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
    """

    def __init__(self, pool: asyncpg.Pool | None, min_interval: float = 0.002) -> None:
        self._pool = pool
        self._min_interval = min_interval
        self._waiters: set[asyncio.Event] = set()
        self._sending: asyncio.Task[None] | None = None
        self._again = False

    def waiter(self) -> asyncio.Event:
        """An event set on every wake-up; the follower clears it before reading."""
        event = asyncio.Event()
        self._waiters.add(event)
        return event

    def forget(self, event: asyncio.Event) -> None:
        """Stop waking a follower."""
        self._waiters.discard(event)

    def wake_local(self) -> None:
        """Wake followers in this process only (also called for foreign NOTIFYs)."""
        for event in self._waiters:
            event.set()

    def poke(self) -> None:
        """Events were committed: wake everyone, sending at most one NOTIFY at a time."""
        self.wake_local()
        if self._pool is None:
            return
        if self._sending is not None and not self._sending.done():
            self._again = True
            return
        self._sending = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        try:
            # One connection for a whole burst, not one acquire per NOTIFY.
            async with self._pool.acquire() as conn:  # type: ignore[union-attr]
                while True:
                    self._again = False
                    await conn.execute(f"NOTIFY {CHANNEL}")
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
                while not self._conn.is_closed():
                    await asyncio.sleep(1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("listener lost its connection: %s", exc)
            self._connected.clear()
            await asyncio.sleep(1.0)

    async def wait_connected(self, timeout: float = 10.0) -> None:
        """Wait until the LISTEN is in place (commits from then on wake this process)."""
        await asyncio.wait_for(self._connected.wait(), timeout)

    def _on_notify(self, *_: object) -> None:
        self._waker.wake_local()

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()
