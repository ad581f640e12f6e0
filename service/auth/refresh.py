"""Refresh tokens: random, stored only as hashes, rotated on use, revocable.

Every login starts a token family; each rotation revokes the presented token and
issues its successor in the same family. A revoked token presented again means
two parties hold the family (one of them a thief), so the whole family dies.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from service.domain.errors import RefreshFailed

log = logging.getLogger(__name__)

TOKEN_BYTES = 32  # 256 random bits


def token_hash(token: str) -> bytes:
    """What the table stores instead of the token."""
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class Rotated:
    """A refresh token's successor and whom it belongs to."""

    customer_reference: str
    token_generation: int
    token: str


async def issue(
    conn: asyncpg.Connection | asyncpg.Pool,
    customer_reference: str,
    now: datetime,
    ttl: int,
    family_id: uuid.UUID | None = None,
) -> str:
    """A new refresh token (256 random bits) for a customer, in a new or given family."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    await conn.execute(
        """INSERT INTO refresh_tokens (token_hash, family_id, customer_reference, issued_at, expires_at)
           VALUES ($1, $2, $3, $4, $5)""",
        token_hash(token),
        family_id or uuid.uuid4(),
        customer_reference,
        now,
        now + timedelta(seconds=ttl),
    )
    return token


async def rotate(pool: asyncpg.Pool, token: str, now: datetime, ttl: int) -> Rotated:
    """Revoke a live token and issue its successor; RefreshFailed for any other token.

    A token that was already revoked revokes its whole family (committed even
    though the caller gets RefreshFailed).
    """
    async with pool.acquire() as conn, conn.transaction():
        # The customer's row first, shared: a password change or an anonymisation
        # (which write that row, then revoke every token) waits for this rotation to
        # commit, and then revokes its successor too; one that came first makes us
        # wait and read the token revoked. Customer, then token: the order they lock in.
        await conn.execute(
            """SELECT 1 FROM customers
               WHERE customer_reference =
                     (SELECT customer_reference FROM refresh_tokens WHERE token_hash = $1)
               FOR SHARE""",
            token_hash(token),
        )
        # The row lock makes two concurrent rotations of one token a reuse.
        row = await conn.fetchrow(
            """SELECT r.family_id, r.customer_reference, r.expires_at, r.revoked_at,
                          c.token_generation
                   FROM refresh_tokens r
                   LEFT JOIN customers c ON c.customer_reference = r.customer_reference
                   WHERE r.token_hash = $1
                   FOR UPDATE OF r""",
            token_hash(token),
        )
        if row is None:
            raise RefreshFailed()
        if row["revoked_at"] is not None:
            burned = await conn.execute(
                """UPDATE refresh_tokens SET revoked_at = $2
                       WHERE family_id = $1 AND revoked_at IS NULL""",
                row["family_id"],
                now,
            )
            log.warning(
                "revoked refresh token reused: family %s of %s revoked (%s)",
                row["family_id"],
                row["customer_reference"],
                burned,
            )
        elif row["expires_at"] > now and row["token_generation"] is not None:
            await conn.execute(
                "UPDATE refresh_tokens SET revoked_at = $2 WHERE token_hash = $1",
                token_hash(token),
                now,
            )
            successor = await issue(
                conn, row["customer_reference"], now, ttl, family_id=row["family_id"]
            )
            return Rotated(row["customer_reference"], row["token_generation"], successor)
    raise RefreshFailed()


async def revoke(
    conn: asyncpg.Connection | asyncpg.Pool, token: str, customer_reference: str, now: datetime
) -> None:
    """Revoke one token, only if it belongs to the customer (others' tokens stay untouched)."""
    await conn.execute(
        """UPDATE refresh_tokens SET revoked_at = $3
           WHERE token_hash = $1 AND customer_reference = $2 AND revoked_at IS NULL""",
        token_hash(token),
        customer_reference,
        now,
    )


async def revoke_all(
    conn: asyncpg.Connection | asyncpg.Pool, customer_reference: str, now: datetime
) -> None:
    """Revoke every live refresh token of a customer."""
    await conn.execute(
        """UPDATE refresh_tokens SET revoked_at = $2
           WHERE customer_reference = $1 AND revoked_at IS NULL""",
        customer_reference,
        now,
    )


async def purge_expired(conn: asyncpg.Connection | asyncpg.Pool, now: datetime) -> int:
    """Delete expired tokens (revoked ones are kept until expiry for reuse detection)."""
    status = await conn.execute("DELETE FROM refresh_tokens WHERE expires_at <= $1", now)
    return int(status.split()[-1])
