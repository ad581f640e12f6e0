"""A realistic customer log for the replay benchmark, written by COPY.

Customers with interleaved lifecycles (register, confirm, edit, addresses,
password resets, subscriptions, a few leave); personal fields sealed with
per-customer data keys exactly as the store seals them.
"""

from __future__ import annotations

import json
import random
import secrets
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from events.crypto import KeyRing
from events.customer import (
    ADDRESS_FIELDS,
    AvailabilityNotificationSubscribed,
    AvailabilityNotificationUnsubscribed,
    CustomerAddressAdded,
    CustomerAddressRemoved,
    CustomerAddressUpdated,
    CustomerAnonymized,
    CustomerConfirmed,
    CustomerCreated,
    CustomerPasswordChanged,
    CustomerPasswordResetRequested,
    CustomerUpdated,
    customer_stream,
)
from events.store import SEALED
from events.types import Event

ACTIVE = 2_000  # customers whose lifecycles interleave at any moment
CHUNK = 20_000  # events per COPY transaction (each gets its own transaction id)
_COLUMNS = [
    "stream_id",
    "version",
    "event_id",
    "event_type",
    "schema_version",
    "payload",
    "metadata",
    "recorded_at",
]


@dataclass
class _Life:
    """One customer's remaining lifecycle."""

    number: int
    key: bytes
    plan: list[str]
    version: int = 0
    addresses: list[str] = field(default_factory=list)
    subscriptions: list[str] = field(default_factory=list)

    @property
    def reference(self) -> str:
        return f"DE--{self.number}"

    @property
    def stream(self) -> str:
        return customer_stream(self.reference)


def _plan(rng: random.Random) -> list[str]:
    """A plausible lifecycle: register, confirm, edit, addresses, subscriptions, maybe leave."""
    plan = ["created"]
    if rng.random() < 0.9:
        plan.append("confirmed")
    rest = (
        ["updated"] * rng.randint(0, 3)
        + ["address"] * rng.randint(0, 3)
        + ["address_updated"] * rng.randint(0, 2)
        + ["reset", "password"] * rng.randint(0, 1)
        + ["subscribed"] * rng.randint(0, 2)
    )
    rng.shuffle(rest)
    plan += rest
    if rng.random() < 0.1:
        plan.append("address_removed")
    if rng.random() < 0.1:
        plan.append("unsubscribed")
    if rng.random() < 0.03:
        plan.append("anonymized")
    return plan


def _event(life: _Life, step: str, rng: random.Random) -> Event | None:
    n = life.number
    if step == "created":
        return CustomerCreated(
            customer_reference=life.reference,
            email=f"customer{n}@example.com",
            salutation="Mr",
            first_name=f"First{n}",
            last_name=f"Last{n}",
            gender="Male",
            date_of_birth="1990-01-31",
            password_hash="$argon2id$v=19$m=19456,t=2,p=1$" + secrets.token_urlsafe(22),
            registration_key_hash=secrets.token_hex(32),
        )
    if step == "confirmed":
        return CustomerConfirmed(registration_key_hash="")
    if step == "updated":
        return CustomerUpdated(changed=["last_name"], last_name=f"Renamed{rng.randint(0, 99)}")
    if step == "address":
        address_id = str(uuid.uuid4())
        life.addresses.append(address_id)
        first = len(life.addresses) == 1
        values = {name: f"{name} {n}" for name in ADDRESS_FIELDS}
        values.update(iso2_code="DE", salutation="Mr")
        return CustomerAddressAdded(
            address_id=address_id, is_default_shipping=first, is_default_billing=first, **values
        )
    if step == "address_updated" and life.addresses:
        return CustomerAddressUpdated(
            address_id=rng.choice(life.addresses), changed=["city"], city=f"City {n}"
        )
    if step == "address_removed" and life.addresses:
        return CustomerAddressRemoved(address_id=life.addresses.pop())
    if step == "reset":
        expires = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
        return CustomerPasswordResetRequested(key_hash=secrets.token_hex(32), expires_at=expires)
    if step == "password":
        return CustomerPasswordChanged(password_hash="$argon2id$" + secrets.token_urlsafe(22))
    if step == "subscribed":
        key = secrets.token_hex(16)
        life.subscriptions.append(key)
        return AvailabilityNotificationSubscribed(
            subscription_key=key,
            email=f"customer{n}@example.com",
            sku=f"SKU-{len(life.subscriptions)}",
            locale_name="en_US",
            customer_reference=life.reference,
        )
    if step == "unsubscribed" and life.subscriptions:
        return AvailabilityNotificationUnsubscribed(subscription_key=life.subscriptions.pop())
    if step == "anonymized":
        return CustomerAnonymized()
    return None


def _row(life: _Life, event: Event, at: datetime) -> tuple[Any, ...]:
    """The events row the store would write: personal fields sealed with the data key."""
    payload = event.to_payload()
    personal = {k: payload.pop(k) for k in event.personal if k in payload}
    if any(v is not None for v in personal.values()):
        payload[SEALED] = KeyRing.seal(life.key, life.stream, personal)
    else:
        payload.update(personal)
    life.version += 1
    metadata = {
        "actor": f"customer:{life.reference}",
        "request_id": uuid.uuid4().hex,
        "correlation_id": uuid.uuid4().hex,
    }
    return (
        life.stream,
        life.version,
        uuid.uuid4(),
        event.type_name,
        event.schema_version,
        json.dumps(payload),
        json.dumps(metadata),
        at,
    )


async def generate(dsn: str, keyring: KeyRing, total: int, seed: int = 7) -> tuple[int, int]:
    """COPY `total` events of interleaved customer lifecycles; returns (events, customers)."""
    rng = random.Random(seed)
    conn = await asyncpg.connect(dsn)  # no JSON codec: rows carry JSON text already
    active: list[_Life] = []
    customers = 0
    written = 0
    at = datetime(2024, 1, 1, tzinfo=UTC)
    keys: list[tuple[str, bytes | None, datetime | None]] = []
    started = time.perf_counter()
    try:
        while written < total:
            rows: list[tuple[Any, ...]] = []
            while len(rows) < min(CHUNK, total - written):
                if len(active) < ACTIVE:
                    customers += 1
                    active.append(_Life(customers, keyring.new_data_key(), _plan(rng)))
                i = rng.randrange(len(active))
                life = active[i]
                step = life.plan.pop(0)
                event = _event(life, step, rng)
                if event is not None:
                    at += timedelta(milliseconds=rng.randint(1, 100))
                    rows.append(_row(life, event, at))
                if not life.plan:
                    active[i] = active[-1]
                    active.pop()
                    wrapped = None if step == "anonymized" else keyring.wrap(life.stream, life.key)
                    keys.append((life.stream, wrapped, at if wrapped is None else None))
            async with conn.transaction():
                await conn.copy_records_to_table("events", records=rows, columns=_COLUMNS)
            written += len(rows)
            rate = written / (time.perf_counter() - started)
            print(
                f"\rgenerated {written:,}/{total:,} events ({rate:,.0f}/s)", end="", file=sys.stderr
            )
        keys += [(life.stream, keyring.wrap(life.stream, life.key), None) for life in active]
        await conn.copy_records_to_table(
            "data_keys", records=keys, columns=["stream_id", "wrapped_key", "erased_at"]
        )
        await conn.execute("VACUUM ANALYZE events")
        await conn.execute("VACUUM ANALYZE data_keys")
    finally:
        await conn.close()
    print(file=sys.stderr)
    return written, customers
