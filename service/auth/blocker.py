"""The login blocker: too many failed logins for one username or one address → 429 for a while.

Failures are rows in PostgreSQL (`login_failures`), not process memory, so every
service process counts the same failures and a client cannot spread its guesses
over the workers behind a load balancer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from service.clock import Clock
from service.domain.errors import TooManyLoginAttempts


@dataclass(frozen=True)
class BlockerPolicy:
    """`limit` failures within `window` block a subject for `block_for` after the last one."""

    limit: int = 10
    window: timedelta = timedelta(minutes=10)
    block_for: timedelta = timedelta(minutes=5)


def subjects(username: str, address: str) -> list[str]:
    """The counters one login attempt touches: its username and its client address.

    The username is kept as a digest: whatever was typed (of any length, with any
    characters) fits the index, and the table holds no email addresses.
    """
    digest = hashlib.sha256(username.strip().lower().encode("utf-8", "surrogatepass")).hexdigest()
    return [f"user:{digest}", f"addr:{address}"]


class LoginBlocker:
    """Counts failed logins per username and per client address, and refuses blocked ones.

    A subject is blocked while it has at least `limit` failures in the last
    `window` and the latest of them is less than `block_for` old. Attempts made
    while blocked are refused before the password is checked and are not
    counted, so the block lifts `block_for` after the failure that tripped it;
    while the window still holds `limit` failures, one more failure blocks again.

    An admitted attempt counts as a failure from the moment it is admitted, and
    stops counting only once its password proved right. Admission is one at a time
    per subject (an advisory lock), so a burst of guesses sent at once gets exactly
    as many tries as one sent one by one.
    """

    def __init__(
        self, pool: asyncpg.Pool, clock: Clock, policy: BlockerPolicy | None = None
    ) -> None:
        self._pool = pool
        self._clock = clock
        self.policy = policy or BlockerPolicy()

    async def admit(self, username: str, address: str) -> list[int]:
        """Count the attempt and return its ticket; TooManyLoginAttempts when blocked.
        (schema.sql's login_admit: the lock, the check and the count in one statement.)"""
        now = self._clock.now()
        ticket = await self._pool.fetchval(
            "SELECT login_admit($1::text[], $2, $3, $4, $5)",
            subjects(username, address),
            now - self.policy.window,
            self.policy.limit,
            now - self.policy.block_for,
            now,
        )
        if ticket is None:
            raise TooManyLoginAttempts()
        return list(ticket)

    async def succeeded(self, ticket: list[int]) -> None:
        """The admitted attempt's password was right: it no longer counts as a failure."""
        await self._pool.execute("DELETE FROM login_failures WHERE id = ANY($1::bigint[])", ticket)

    async def purge(self) -> int:
        """Forget failures that fell out of the window; returns how many."""
        status = await self._pool.execute(
            "DELETE FROM login_failures WHERE failed_at <= $1",
            self._clock.now() - self.policy.window,
        )
        return int(status.split()[-1])
