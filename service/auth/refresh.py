"""Refresh tokens: random, stored only as hashes, rotated on use, revocable."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime, timedelta

import asyncpg


def token_hash(token: str) -> bytes:
    """What the table stores instead of the token."""
    return hashlib.sha256(token.encode()).digest()


async def issue(
    conn: asyncpg.Connection | asyncpg.Pool,
    customer_reference: str,
    now: datetime,
    ttl: int,
    family_id: uuid.UUID | None = None,
) -> str:
    """A new refresh token (256 random bits) for a customer, in a new or given family."""
    token = secrets.token_urlsafe(32)
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
