"""Customer profile, email reservation and password-reset read models."""

from __future__ import annotations

from datetime import date, datetime

import asyncpg

from events.types import RecordedEvent
from projections.registry import Projector

projector = Projector(name="customers", tables=("customers", "customer_emails", "password_resets"))

_COLUMNS = {
    "email": "email",
    "salutation": "salutation",
    "first_name": "first_name",
    "last_name": "last_name",
    "gender": "gender",
    "date_of_birth": "date_of_birth",
}


def _date(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def reference_of(event: RecordedEvent) -> str:
    """The customer reference of an event in a customer stream."""
    return event.stream_id.removeprefix("customer-")


@projector.on("CustomerCreated")
async def _created(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    p = event.payload
    await conn.execute(
        """INSERT INTO customers (customer_reference, email, salutation, first_name, last_name,
               gender, date_of_birth, password_hash, registration_key_hash, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)""",
        p["customer_reference"],
        p["email"],
        p["salutation"],
        p["first_name"],
        p["last_name"],
        p["gender"],
        _date(p["date_of_birth"]),
        p["password_hash"],
        bytes.fromhex(p["registration_key_hash"]),
        event.recorded_at,
    )
    # The unique key here is what rejects a second registration of one email.
    await conn.execute(
        "INSERT INTO customer_emails (email_lower, customer_reference) VALUES ($1, $2)",
        p["email"].lower(),
        p["customer_reference"],
    )


@projector.on("CustomerConfirmed")
async def _confirmed(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    await conn.execute(
        """UPDATE customers SET confirmed_at = $2, registration_key_hash = NULL, updated_at = $2
           WHERE customer_reference = $1""",
        reference_of(event),
        event.recorded_at,
    )


@projector.on("CustomerUpdated")
async def _updated(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    p = event.payload
    changed = [name for name in p.get("changed", []) if name in _COLUMNS]
    ref = reference_of(event)
    sets = ["updated_at = $2"]
    args: list[object] = [ref, event.recorded_at]
    for name in changed:
        args.append(_date(p[name]) if name == "date_of_birth" else p[name])
        sets.append(f"{_COLUMNS[name]} = ${len(args)}")
    await conn.execute(
        f"UPDATE customers SET {', '.join(sets)} WHERE customer_reference = $1", *args
    )
    if "email" in changed:
        await conn.execute(
            "UPDATE customer_emails SET email_lower = $2 WHERE customer_reference = $1",
            ref,
            p["email"].lower(),
        )


@projector.on("CustomerPasswordChanged")
async def _password_changed(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    ref = reference_of(event)
    if event.payload.get("reason") == "rehash":
        # Same password, stronger hash: sessions stay valid.
        await conn.execute(
            "UPDATE customers SET password_hash = $2 WHERE customer_reference = $1",
            ref,
            event.payload["password_hash"],
        )
        return
    # Bumping the generation is what invalidates every access token issued before.
    await conn.execute(
        """UPDATE customers SET password_hash = $2, token_generation = token_generation + 1,
               updated_at = $3
           WHERE customer_reference = $1""",
        ref,
        event.payload["password_hash"],
        event.recorded_at,
    )
    await conn.execute("DELETE FROM password_resets WHERE customer_reference = $1", ref)


@projector.on("CustomerPasswordResetRequested")
async def _reset_requested(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    p = event.payload
    await conn.execute(
        """INSERT INTO password_resets (key_hash, customer_reference, expires_at)
           VALUES ($1, $2, $3) ON CONFLICT (key_hash) DO NOTHING""",
        bytes.fromhex(p["key_hash"]),
        reference_of(event),
        datetime.fromisoformat(p["expires_at"]),
    )


@projector.on("CustomerAnonymized")
async def _anonymized(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    ref = reference_of(event)
    await conn.execute("DELETE FROM customers WHERE customer_reference = $1", ref)
    await conn.execute("DELETE FROM customer_emails WHERE customer_reference = $1", ref)
    await conn.execute("DELETE FROM password_resets WHERE customer_reference = $1", ref)
