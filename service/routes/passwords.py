"""Passwords: change (/customer-password), forgotten (/customer-forgotten-password), restore."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from aiohttp import web

from events.customer import CustomerPasswordChanged, CustomerPasswordResetRequested, customer_stream
from events.types import Event, NewEvent
from service.auth import refresh
from service.auth.login import behind_blocker, client_address
from service.auth.onetime import RESTORE, key_hash
from service.commands import AfterAppend, execute, metadata_of, run
from service.domain.customer import CustomerState
from service.domain.errors import (
    ConcurrentModification,
    CustomerNotFound,
    InvalidRestoreKey,
    NewPasswordsDiffer,
    NotOwner,
    RestoreKeyExpired,
    WrongPassword,
)
from service.domain.passwords import require_new_password, require_printable
from service.endpoint import endpoint
from service.errors import REFERENCE_MISSING
from service.jsonapi import no_content
from service.middlewares import principal_of
from service.schemas.passwords import (
    ForgottenPasswordSchema,
    PasswordChangeSchema,
    RestorePasswordSchema,
)
from service.typedefs import BACKGROUND, BODY, CLOCK, HASHER, ONETIME, POOL, STORE

RESTORE_KEY_TTL = timedelta(hours=2)
# Restore mails one customer gets per window. The answer stays 204 either way, but
# without a cap anyone could flood a stranger's mailbox (and the shop's sending
# reputation) by posting their address in a loop.
RESTORE_MAILS_PER_WINDOW = 3
RESTORE_MAIL_WINDOW = timedelta(hours=1)


def restore_mails_left(state: CustomerState, now: datetime) -> bool:
    """Whether the customer may get another restore mail now; counted from the log, so
    every process (and a replay) decides alike."""
    since = now - RESTORE_MAIL_WINDOW + RESTORE_KEY_TTL  # keys record expiry, not request
    recent = sum(1 for expires_at in state.reset_keys.values() if expires_at > since)
    return recent < RESTORE_MAILS_PER_WINDOW


def _revoke_refresh_tokens(reference: str, now: datetime) -> AfterAppend:
    async def after(conn: asyncpg.Connection, state: CustomerState) -> None:
        # Same transaction as the event: no refresh token outlives the old password.
        await refresh.revoke_all(conn, reference, now)

    return after


# ------------------------------------------------------------------ change


@endpoint(
    auth="customer",
    body_type="customer-password",
    schema=PasswordChangeSchema,
    status=204,
    summary="Change the caller's password (revokes every token issued before).",
)
async def change_password(request: web.Request) -> web.Response:
    """204; 802 foreign, 420 charset, 422 mismatch, 408 wrong current password, 429 after
    10 wrong ones (the login blocker's counters)."""
    ref = request.match_info["ref"]
    attrs = PasswordChangeSchema().check(request[BODY].attributes)
    new_password: str = attrs["new_password"]
    require_printable(new_password)
    if principal_of(request).customer_reference != ref:  # after 420, before 422
        raise NotOwner()
    if new_password != attrs["confirm_password"]:
        raise NewPasswordsDiffer()
    app = request.app
    row = await app[POOL].fetchrow(
        "SELECT password_hash, email FROM customers WHERE customer_reference = $1", ref
    )
    if row is None:
        raise CustomerNotFound()
    current: str = row["password_hash"]
    hasher = app[HASHER]

    async def check_current() -> None:
        if not await hasher.verify(current, attrs["password"]):
            raise WrongPassword()

    # A stolen access token must not buy unlimited guesses at the password: the same
    # counters as login (so these failures block logging in too, and vice versa).
    await behind_blocker(app, row["email"], client_address(request), check_current)
    new_hash = await hasher.hash(new_password)

    def decide(state: CustomerState) -> Sequence[Event]:
        if not state.exists:
            raise CustomerNotFound()
        if state.password_hash != current:
            # Changed since we verified against it: the current password is unproven.
            raise ConcurrentModification(ref)
        return [CustomerPasswordChanged(password_hash=new_hash, reason="change")]

    after = _revoke_refresh_tokens(ref, app[CLOCK].now())
    await run(request, customer_stream(ref), decide, after=after)
    return no_content()


@endpoint(auth="customer", body_type="customer-password", missing_id=REFERENCE_MISSING)
async def change_without_reference(request: web.Request) -> web.Response:  # pragma: no cover
    """Never reached: the checks middleware answers 405 first."""
    raise AssertionError


# ------------------------------------------------------------------ forgotten


@endpoint(
    auth="optional",
    body_type="customer-forgotten-password",
    schema=ForgottenPasswordSchema,
    status=204,
    summary="Mail a password restore link to a confirmed customer (204 for any email).",
)
async def forgotten_password(request: web.Request) -> web.Response:
    """204 always, after the same work whether or not the email is known.

    Everything that depends on the email (lookup, event, mail) runs after the
    answer, so neither the status nor the timing tells whether an account exists.
    """
    attrs = ForgottenPasswordSchema().check(request[BODY].attributes)
    app = request.app
    await app[BACKGROUND].spawn(
        request_restore(app, attrs["email"], metadata_of(request)), name="password-restore"
    )
    return no_content()


async def request_restore(app: web.Application, email: str, metadata: dict[str, Any]) -> None:
    """Record a restore key for a confirmed customer with this email; the mailer sends it."""
    ref = await app[POOL].fetchval(
        """SELECT c.customer_reference
           FROM customer_emails e JOIN customers c USING (customer_reference)
           WHERE e.email_lower = $1 AND c.confirmed_at IS NOT NULL""",
        email.strip().lower(),
    )
    if ref is None:
        return
    event_id = uuid.uuid4()
    # Only the hash is recorded; the mailer re-derives the key from the event id.
    hashed = key_hash(app[ONETIME].key(RESTORE, event_id))
    now = app[CLOCK].now()
    expires_at = now + RESTORE_KEY_TTL

    def decide(state: CustomerState) -> Sequence[NewEvent]:
        if not state.exists or not state.confirmed or not restore_mails_left(state, now):
            return []
        event = CustomerPasswordResetRequested(key_hash=hashed, expires_at=expires_at.isoformat())
        return [NewEvent(event, event_id)]

    await execute(app[STORE], customer_stream(ref), decide, metadata)


# ------------------------------------------------------------------ restore


@endpoint(
    auth="optional",
    body_type="customer-restore-password",
    schema=RestorePasswordSchema,
    status=204,
    summary="Set a new password with the key from the restore mail.",
)
async def restore_password(request: web.Request) -> web.Response:
    """204; 420 charset, 406 mismatch, 415 unknown or used key, 407 expired key."""
    attrs = RestorePasswordSchema().check(request[BODY].attributes)
    password: str = attrs["password"]
    require_new_password(password, attrs["confirm_password"])
    app = request.app
    hashed = key_hash(attrs["restore_password_key"])
    row = await app[POOL].fetchrow(
        "SELECT customer_reference, expires_at FROM password_resets WHERE key_hash = $1",
        bytes.fromhex(hashed),
    )
    if row is None:
        raise InvalidRestoreKey()
    now = app[CLOCK].now()
    if row["expires_at"] <= now:
        raise RestoreKeyExpired()
    ref: str = row["customer_reference"]
    new_hash = await app[HASHER].hash(password)

    def decide(state: CustomerState) -> Sequence[Event]:
        # The log decides: a key used (or voided by a password change) meanwhile is gone.
        expires_at = state.reset_keys.get(hashed)
        if not state.exists or expires_at is None:
            raise InvalidRestoreKey()
        if expires_at <= now:
            raise RestoreKeyExpired()
        return [
            CustomerPasswordChanged(
                password_hash=new_hash, reason="restore", restore_key_hash=hashed
            )
        ]

    await run(
        request,
        customer_stream(ref),
        decide,
        after=_revoke_refresh_tokens(ref, now),
        customer=ref,  # the key came from the customer's mailbox
    )
    return no_content()


def setup(app: web.Application) -> None:
    """Register the password routes."""
    r = app.router
    r.add_patch("/customer-password", change_without_reference, name="customer-password-no-ref")
    r.add_patch("/customer-password/{ref}", change_password, name="customer-password")
    r.add_post(
        "/customer-forgotten-password", forgotten_password, name="customer-forgotten-password"
    )
    r.add_patch(
        "/customer-restore-password/{id}", restore_password, name="customer-restore-password"
    )
