"""Periodic clean-up of credentials state that can no longer matter."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from service.auth import refresh
from service.auth.blocker import LoginBlocker
from service.clock import Clock

log = logging.getLogger(__name__)


async def sweep(pool: asyncpg.Pool, clock: Clock, blocker: LoginBlocker) -> tuple[int, int]:
    """Delete expired refresh tokens and login failures older than the blocker's window."""
    tokens = await refresh.purge_expired(pool, clock.now())
    failures = await blocker.purge()
    return tokens, failures


async def sweep_periodically(
    pool: asyncpg.Pool, clock: Clock, blocker: LoginBlocker, interval: float
) -> None:
    """Sweep now and every `interval` seconds; every process may run it (the deletes commute)."""
    while True:
        try:
            tokens, failures = await sweep(pool, clock, blocker)
            if tokens or failures:
                log.info("swept %d expired refresh tokens, %d old login failures", tokens, failures)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database may be briefly away; try again next time
            log.warning("credentials sweep failed: %s", exc)
        await asyncio.sleep(interval)
