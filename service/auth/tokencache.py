"""The hot path of every authenticated request, without its two costs: RSA verification of a
token already verified, and the `token_generation` lookup of its customer.

Verified tokens: the signature check is deterministic, so a token seen before is not
checked again; its expiry is, on every use, against the injectable clock.

Generations: a customer's token generation changes only with `CustomerPasswordChanged`
and `CustomerAnonymized`. Their append transaction NOTIFYs `glue_tokens` (rare events,
so the commit-time notify lock costs nothing that matters), and every process drops its
cached generation when the notification arrives. In the process that appends, the
customer is also marked pending before commit, so no request there can cache the old
value in between. While the LISTEN connection is down nothing is cached. Other processes
learn of the change when the notification reaches them: milliseconds after the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import asyncpg
from aiohttp import web

from service.auth.tokens import InvalidToken, Principal, TokenService
from service.clock import Clock

log = logging.getLogger(__name__)
CHANNEL = "glue_tokens"
# Events after which a customer's cached generation must not be trusted.
GENERATION_EVENTS = frozenset({"CustomerPasswordChanged", "CustomerAnonymized"})
_MAX_TOKENS = 50_000
_MAX_GENERATIONS = 100_000
# A safety net only (e.g. a replay rewrote the tables): invalidation is by NOTIFY.
_GENERATION_TTL = 30.0
_PENDING_TTL = 60.0

Inline = Callable[[asyncpg.Connection, Sequence[Any]], Awaitable[None]]


class TokenCache:
    """Verified tokens and customer token generations, per process."""

    def __init__(self, tokens: TokenService, clock: Clock) -> None:
        self._tokens = tokens
        self._clock = clock
        self._verified: dict[str, Principal] = {}
        self._generations: dict[str, tuple[int, float]] = {}
        self._pending: dict[str, float] = {}
        self._epoch = 0
        self.listening = False

    def verify(self, token: str) -> Principal:
        """The token's principal; InvalidToken when forged, malformed or expired."""
        principal = self._verified.get(token)
        if principal is None:
            principal = self._tokens.verify(token)  # raises InvalidToken
            if len(self._verified) >= _MAX_TOKENS:
                self._verified.pop(next(iter(self._verified)))
            self._verified[token] = principal
        if principal.expires_at <= self._clock.now().timestamp():
            self._verified.pop(token, None)
            raise InvalidToken("expired")
        return principal

    async def generation(self, pool: asyncpg.Pool, reference: str) -> int | None:
        """The customer's current token generation (None: no such customer)."""
        now = time.monotonic()
        cached = self._generations.get(reference)
        if cached is not None and now - cached[1] < _GENERATION_TTL and self._trusted(reference):
            return cached[0]
        epoch = self._epoch
        value = await pool.fetchval(
            "SELECT token_generation FROM customers WHERE customer_reference = $1", reference
        )
        # Cache only what no invalidation raced with.
        if value is not None and epoch == self._epoch and self._trusted(reference):
            if len(self._generations) >= _MAX_GENERATIONS:
                self._generations.pop(next(iter(self._generations)))
            self._generations[reference] = (value, now)
        return value

    def _trusted(self, reference: str) -> bool:
        if not self.listening:
            return False
        since = self._pending.get(reference)
        if since is None:
            return True
        if time.monotonic() - since > _PENDING_TTL:  # its transaction never committed
            del self._pending[reference]
            return True
        return False

    def invalidate(self, reference: str, *, pending: bool) -> None:
        """Forget a customer's generation; `pending`: until its NOTIFY arrives."""
        self._epoch += 1
        self._generations.pop(reference, None)
        if pending:
            self._pending[reference] = time.monotonic()
        else:
            self._pending.pop(reference, None)

    def flush(self) -> None:
        """Forget every generation (the notifications may have been missed)."""
        self._epoch += 1
        self._generations.clear()

    @staticmethod
    def watches(event_type: str) -> bool:
        """Whether events of this type change a customer's token generation (the
        inline projection must then run through `watch`, in a transaction)."""
        return event_type in GENERATION_EVENTS

    def watch(self, inline: Inline) -> Inline:
        """Wrap the inline projection: events that change a generation mark their
        customer pending here and NOTIFY every process at commit."""

        async def watched(conn: asyncpg.Connection, events: Sequence[Any]) -> None:
            await inline(conn, events)
            for event in events:
                if event.event_type in GENERATION_EVENTS:
                    reference = event.stream_id.removeprefix("customer-")
                    self.invalidate(reference, pending=True)
                    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, reference)

        return watched

    async def listen(self, connect: Callable[[], Awaitable[asyncpg.Connection]]) -> None:
        """Hold a LISTEN connection until cancelled, reconnecting when it drops."""
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await connect()
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._on_notify)
                self.flush()
                self.listening = True
                while not conn.is_closed() and not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), 5.0)
                    if not lost.is_set():
                        await conn.fetchval("SELECT 1")  # notice a dead peer
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("token cache: listener lost: %s", exc)
            finally:
                self.listening = False
                self.flush()
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close(timeout=2))
            await asyncio.sleep(1.0)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, reference: str) -> None:
        self.invalidate(reference, pending=False)


def lifecycle(
    key: web.AppKey[TokenCache], connect: Callable[[], Awaitable[asyncpg.Connection]]
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context that runs the cache's listener with the application."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.get_running_loop().create_task(app[key].listen(connect))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return ctx
