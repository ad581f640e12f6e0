"""Password login shared by /access-tokens and the OAuth password grant."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import web

from events.customer import CustomerPasswordChanged, customer_stream
from events.store import ConcurrencyError
from events.types import NewEvent
from service.auth import refresh
from service.domain.errors import AuthenticationFailed, TooManyLoginAttempts
from service.logs import request_id_var
from service.typedefs import BLOCKER, CLOCK, HASHER, METRICS, POOL, SETTINGS, STORE, TOKENS

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class TokenPair:
    """What a successful login or refresh hands out."""

    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int


async def issue_pair(app: web.Application, reference: str, generation: int) -> TokenPair:
    """A fresh access token and a refresh token in a new family."""
    settings = app[SETTINGS]
    access = app[TOKENS].issue_customer(reference, generation)
    refresh_token = await refresh.issue(
        app[POOL], reference, app[CLOCK].now(), settings.refresh_token_ttl
    )
    return TokenPair(access, settings.access_token_ttl, refresh_token, settings.refresh_token_ttl)


def client_address(request: web.Request) -> str:
    """The address the login blocker counts failures against (the TCP peer)."""
    return request.remote or "unknown"


async def behind_blocker(
    app: web.Application, username: str, address: str, check: Callable[[], Awaitable[T]]
) -> T:
    """Run a password check behind the login blocker: refused (429) while the username
    or the address is blocked, counted as a failure from admission until `check`
    returns (it raises when the password is wrong, and the attempt stays counted)."""
    blocker = app.get(BLOCKER)
    if blocker is None:
        return await check()
    try:
        ticket = await blocker.admit(username, address)
    except TooManyLoginAttempts:
        metrics = app.get(METRICS)
        if metrics is not None:
            metrics.login_blocks.inc()
        raise
    result = await check()
    await blocker.succeeded(ticket)
    return result


async def password_login(
    app: web.Application, username: str, password: str, address: str
) -> TokenPair:
    """A token pair for valid credentials, behind the login blocker.

    Blocked usernames and addresses are refused before the password is checked,
    so a correct password does not get through while blocked.
    """
    reference, generation = await behind_blocker(
        app, username, address, lambda: authenticate(app, username, password)
    )
    return await issue_pair(app, reference, generation)


async def refreshed_pair(app: web.Application, refresh_token: str) -> TokenPair:
    """A fresh pair for a live refresh token, which is revoked (RefreshFailed otherwise)."""
    settings = app[SETTINGS]
    rotated = await refresh.rotate(
        app[POOL], refresh_token, app[CLOCK].now(), settings.refresh_token_ttl
    )
    access = app[TOKENS].issue_customer(rotated.customer_reference, rotated.token_generation)
    return TokenPair(access, settings.access_token_ttl, rotated.token, settings.refresh_token_ttl)


async def authenticate(app: web.Application, username: str, password: str) -> tuple[str, int]:
    """(reference, token generation) for valid credentials of a confirmed customer.

    Unknown emails verify against a dummy hash, so every failure costs the same.
    """
    email = username.strip().lower()
    # PostgreSQL text cannot hold NUL, so no stored email has one.
    row = (
        None
        if "\x00" in email
        else await app[POOL].fetchrow(
            """SELECT c.customer_reference, c.password_hash, c.confirmed_at, c.token_generation
               FROM customer_emails e JOIN customers c USING (customer_reference)
               WHERE e.email_lower = $1""",
            email,
        )
    )
    hasher = app[HASHER]
    ok = await hasher.verify(row["password_hash"] if row else None, password)
    if not ok or row is None or row["confirmed_at"] is None:
        raise AuthenticationFailed()
    if hasher.needs_rehash(row["password_hash"]):
        await _rehash(app, row["customer_reference"], password)
    return row["customer_reference"], row["token_generation"]


async def _rehash(app: web.Application, reference: str, password: str) -> None:
    # Best effort: a lost race just means the next login tries again.
    new_hash = await app[HASHER].hash(password)
    store = app[STORE]
    stream = customer_stream(reference)
    request_id = request_id_var.get()  # the login that revealed the old hash
    try:
        version = await store.stream_version(stream)
        await store.append(
            stream,
            [NewEvent(CustomerPasswordChanged(password_hash=new_hash, reason="rehash"))],
            version,
            {
                "actor": "system",
                "reason": "argon2 parameters changed",
                "request_id": request_id,
                "causation_id": request_id,
                "correlation_id": request_id,
            },
        )
    except ConcurrencyError:
        log.info("rehash of %s lost a race; will retry at next login", reference)
