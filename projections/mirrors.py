"""Pure-Python mirrors of the inline projectors, for the bulk path of `replay`.

A mirror folds ONE stream's events into the rows that stream contributes to each
read-model table, exactly as its projector's SQL would; the bulk path then COPYs
those rows. That is valid because every projector here keys its rows by the
event's stream (customer reference, address id, subscription key): what one
stream's events do never depends on another stream's rows.

Each mirror records the fingerprint of the projector module it mirrors. When the
projector changes, the fingerprint no longer matches and `replay` takes the
handler path (slower, always right) until someone updates the mirror; the
Hypothesis test in tests/test_replay_verify.py holds the two to the same tables.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
import uuid
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from events.customer import ADDRESS_FIELDS
from events.types import RecordedEvent
from projections.registry import Projector

Row = dict[str, Any]
Tables = dict[str, dict[Hashable, Row]]  # table → primary key → row
MirrorHandler = Callable[[Tables, RecordedEvent], None]


@dataclass
class Mirror:
    """The Python twin of one projector: same tables, same event types, same rows."""

    name: str
    columns: dict[str, tuple[str, ...]]  # table → the columns the projector writes
    fingerprint: str  # of the projector module it mirrors (see `fingerprint`)
    handlers: dict[str, MirrorHandler] = field(default_factory=dict)

    def on(self, *type_names: str) -> Callable[[MirrorHandler], MirrorHandler]:
        """Register a handler for event types (decorator)."""

        def decorate(fn: MirrorHandler) -> MirrorHandler:
            for type_name in type_names:
                self.handlers[type_name] = fn
            return fn

        return decorate

    def mirrors(self, projector: Projector) -> bool:
        """Whether this mirror was written for the projector as it is now."""
        return (
            projector.name == self.name
            and set(projector.tables) == set(self.columns)
            and set(projector.handlers) == set(self.handlers)
            and fingerprint(projector) == self.fingerprint
        )


def fingerprint(projector: Projector) -> str:
    """A digest of the source of the module defining the projector's handlers."""
    modules = sorted({h.__module__ for h in projector.handlers.values()})
    source = "".join(inspect.getsource(sys.modules[m]) for m in modules)
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def reference_of(event: RecordedEvent) -> str:
    """The customer reference of an event in a customer stream."""
    return event.stream_id.removeprefix("customer-")


def _date(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def _insert(rows: dict[Hashable, Row], key: Hashable, row: Row) -> None:
    if key in rows:  # the table's primary key would refuse it
        raise ValueError(f"duplicate key {key!r}")
    rows[key] = row


def _delete_where(rows: dict[Hashable, Row], column: str, value: Any) -> None:
    for key in [k for k, r in rows.items() if r[column] == value]:
        del rows[key]


# ---------------------------------------------------------------- customers

_PROFILE = ("email", "salutation", "first_name", "last_name", "gender", "date_of_birth")

customers = Mirror(
    name="customers",
    columns={
        "customers": (
            "customer_reference",
            "email",
            *_PROFILE[1:],
            "password_hash",
            "registration_key_hash",
            "confirmed_at",
            "token_generation",
            "created_at",
            "updated_at",
        ),
        "customer_emails": ("email_lower", "customer_reference"),
        "password_resets": ("key_hash", "customer_reference", "expires_at"),
    },
    fingerprint="f4cea49e20168a90",
)


@customers.on("CustomerCreated")
def _created(t: Tables, e: RecordedEvent) -> None:
    p = e.payload
    ref = p["customer_reference"]
    row = {name: p[name] for name in _PROFILE}
    row.update(
        customer_reference=ref,
        date_of_birth=_date(p["date_of_birth"]),
        password_hash=p["password_hash"],
        registration_key_hash=bytes.fromhex(p["registration_key_hash"]),
        confirmed_at=None,
        token_generation=0,
        created_at=e.recorded_at,
        updated_at=e.recorded_at,
    )
    _insert(t["customers"], ref, row)
    email = p["email"].lower()
    _insert(t["customer_emails"], email, {"email_lower": email, "customer_reference": ref})


@customers.on("CustomerConfirmed")
def _confirmed(t: Tables, e: RecordedEvent) -> None:
    row = t["customers"].get(reference_of(e))
    if row is not None:
        row.update(confirmed_at=e.recorded_at, registration_key_hash=None, updated_at=e.recorded_at)


@customers.on("CustomerUpdated")
def _updated(t: Tables, e: RecordedEvent) -> None:
    p = e.payload
    ref = reference_of(e)
    changed = [name for name in p.get("changed", []) if name in _PROFILE]
    row = t["customers"].get(ref)
    if row is not None:
        row["updated_at"] = e.recorded_at
        for name in changed:
            row[name] = _date(p[name]) if name == "date_of_birth" else p[name]
    if "email" in changed:
        emails = t["customer_emails"]
        for key in [k for k, r in emails.items() if r["customer_reference"] == ref]:
            del emails[key]
            lower = p["email"].lower()
            _insert(emails, lower, {"email_lower": lower, "customer_reference": ref})


@customers.on("CustomerPasswordChanged")
def _password_changed(t: Tables, e: RecordedEvent) -> None:
    ref = reference_of(e)
    row = t["customers"].get(ref)
    if e.payload.get("reason") == "rehash":
        if row is not None:
            row["password_hash"] = e.payload["password_hash"]
        return
    if row is not None:
        row["password_hash"] = e.payload["password_hash"]
        row["token_generation"] += 1
        row["updated_at"] = e.recorded_at
    _delete_where(t["password_resets"], "customer_reference", ref)


@customers.on("CustomerPasswordResetRequested")
def _reset_requested(t: Tables, e: RecordedEvent) -> None:
    p = e.payload
    key = bytes.fromhex(p["key_hash"])
    t["password_resets"].setdefault(  # ON CONFLICT (key_hash) DO NOTHING
        key,
        {
            "key_hash": key,
            "customer_reference": reference_of(e),
            "expires_at": datetime.fromisoformat(p["expires_at"]),
        },
    )


@customers.on("CustomerAnonymized")
def _customer_anonymized(t: Tables, e: RecordedEvent) -> None:
    ref = reference_of(e)
    t["customers"].pop(ref, None)
    _delete_where(t["customer_emails"], "customer_reference", ref)
    _delete_where(t["password_resets"], "customer_reference", ref)


# ---------------------------------------------------------------- addresses

addresses = Mirror(
    name="addresses",
    columns={
        "addresses": (
            "uuid",
            "customer_reference",
            *ADDRESS_FIELDS,
            "is_default_shipping",
            "is_default_billing",
            "created_at",
            "updated_at",
        )
    },
    fingerprint="c624d924c3e6caab",
)
_FLAGS = ("is_default_shipping", "is_default_billing")


def _move_defaults(rows: dict[Hashable, Row], ref: str, address_id: uuid.UUID, p: Row) -> None:
    here = rows.get(address_id)
    if here is None or here["customer_reference"] != ref:
        return
    for flag in _FLAGS:
        if p.get(flag):
            for row in rows.values():
                if row["customer_reference"] == ref:
                    row[flag] = row["uuid"] == address_id


@addresses.on("CustomerAddressAdded")
def _address_added(t: Tables, e: RecordedEvent) -> None:
    p = e.payload
    ref = reference_of(e)
    address_id = uuid.UUID(p["address_id"])
    row = {name: p.get(name) for name in ADDRESS_FIELDS}
    row.update(
        uuid=address_id,
        customer_reference=ref,
        is_default_shipping=False,
        is_default_billing=False,
        created_at=e.recorded_at,
        updated_at=e.recorded_at,
    )
    _insert(t["addresses"], address_id, row)
    _move_defaults(t["addresses"], ref, address_id, p)


@addresses.on("CustomerAddressUpdated")
def _address_updated(t: Tables, e: RecordedEvent) -> None:
    p = e.payload
    ref = reference_of(e)
    address_id = uuid.UUID(p["address_id"])
    row = t["addresses"].get(address_id)
    if row is not None and row["customer_reference"] == ref:
        row["updated_at"] = e.recorded_at
        for name in p.get("changed", []):
            if name in ADDRESS_FIELDS:
                row[name] = p.get(name)
    _move_defaults(t["addresses"], ref, address_id, p)


@addresses.on("CustomerAddressRemoved")
def _address_removed(t: Tables, e: RecordedEvent) -> None:
    address_id = uuid.UUID(e.payload["address_id"])
    row = t["addresses"].get(address_id)
    if row is not None and row["customer_reference"] == reference_of(e):
        del t["addresses"][address_id]


@addresses.on("CustomerAnonymized")
def _addresses_anonymized(t: Tables, e: RecordedEvent) -> None:
    _delete_where(t["addresses"], "customer_reference", reference_of(e))


# ---------------------------------------------------------------- subscriptions

subscriptions = Mirror(
    name="subscriptions",
    columns={
        "availability_subscriptions": (
            "subscription_key",
            "customer_reference",
            "email",
            "email_lower",
            "sku",
            "locale_name",
            "created_at",
        )
    },
    fingerprint="4f5c32a62eca7e3d",
)


@subscriptions.on("AvailabilityNotificationSubscribed")
def _subscribed(t: Tables, e: RecordedEvent) -> None:
    p = e.payload
    _insert(
        t["availability_subscriptions"],
        p["subscription_key"],
        {
            "subscription_key": p["subscription_key"],
            "customer_reference": p.get("customer_reference"),
            "email": p["email"],
            "email_lower": p["email"].lower(),
            "sku": p["sku"],
            "locale_name": p["locale_name"],
            "created_at": e.recorded_at,
        },
    )


@subscriptions.on("AvailabilityNotificationUnsubscribed")
def _unsubscribed(t: Tables, e: RecordedEvent) -> None:
    t["availability_subscriptions"].pop(e.payload["subscription_key"], None)


@subscriptions.on("CustomerAnonymized")
def _subscriptions_anonymized(t: Tables, e: RecordedEvent) -> None:
    _delete_where(t["availability_subscriptions"], "customer_reference", reference_of(e))


MIRRORS = {m.name: m for m in (customers, addresses, subscriptions)}
