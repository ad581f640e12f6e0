"""A customer's state, folded from its stream, and the decisions made over it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from events.customer import ADDRESS_FIELDS, PROFILE_FIELDS
from events.types import RecordedEvent


@dataclass
class AddressState:
    """One address of the address book."""

    address_id: str
    fields: dict[str, Any]
    is_default_shipping: bool = False
    is_default_billing: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass
class CustomerState:
    """Everything the log says about one customer, as of `version`."""

    reference: str | None = None
    version: int = 0
    profile: dict[str, Any] = field(default_factory=dict)
    password_hash: str | None = None
    registration_key_hash: str | None = None
    confirmed: bool = False
    anonymized: bool = False
    reset_keys: dict[str, datetime] = field(default_factory=dict)
    addresses: dict[str, AddressState] = field(default_factory=dict)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def exists(self) -> bool:
        """Registered and not anonymised."""
        return self.version > 0 and not self.anonymized

    def copy(self) -> CustomerState:
        """A deep-enough copy to fold further events onto."""
        return dataclasses.replace(
            self,
            profile=dict(self.profile),
            reset_keys=dict(self.reset_keys),
            addresses={
                k: dataclasses.replace(v, fields=dict(v.fields)) for k, v in self.addresses.items()
            },
            subscriptions=dict(self.subscriptions),
        )


def fold(
    events: Iterable[RecordedEvent], state: CustomerState | None = None, *, copy: bool = True
) -> CustomerState:
    """Apply events in order to a state (a fresh one by default); `copy=False` folds
    onto the given state itself, for a caller that owns it."""
    if state is None:
        state = CustomerState()
    elif copy:
        state = state.copy()
    for event in events:
        _apply(state, event)
        state.version = event.version
    return state


def _apply(s: CustomerState, e: RecordedEvent) -> None:
    p = e.payload
    t = e.event_type
    if t == "CustomerCreated":
        s.reference = p["customer_reference"]
        s.profile = {k: p.get(k) for k in PROFILE_FIELDS}
        s.password_hash = p.get("password_hash")
        s.registration_key_hash = p["registration_key_hash"]
        s.created_at = s.updated_at = e.recorded_at
    elif t == "CustomerConfirmed":
        s.confirmed = True
        s.registration_key_hash = None
        s.updated_at = e.recorded_at
    elif t == "CustomerUpdated":
        for name in p.get("changed", []):
            if name in PROFILE_FIELDS:
                s.profile[name] = p.get(name)
        s.updated_at = e.recorded_at
    elif t == "CustomerPasswordChanged":
        s.password_hash = p.get("password_hash")
        if p.get("reason") != "rehash":
            s.reset_keys.clear()
            s.updated_at = e.recorded_at
    elif t == "CustomerPasswordResetRequested":
        s.reset_keys[p["key_hash"]] = datetime.fromisoformat(p["expires_at"])
    elif t == "CustomerAnonymized":
        s.anonymized = True
        s.profile = dict.fromkeys(PROFILE_FIELDS)
        s.password_hash = None
        s.reset_keys.clear()
        s.addresses.clear()
        s.subscriptions.clear()
        s.updated_at = e.recorded_at
    elif t == "CustomerAddressAdded":
        _set_defaults(s, p["address_id"], p.get("is_default_shipping"), p.get("is_default_billing"))
        s.addresses[p["address_id"]] = AddressState(
            address_id=p["address_id"],
            fields={k: p.get(k) for k in ADDRESS_FIELDS},
            is_default_shipping=bool(p.get("is_default_shipping")),
            is_default_billing=bool(p.get("is_default_billing")),
            created_at=e.recorded_at,
            updated_at=e.recorded_at,
        )
    elif t == "CustomerAddressUpdated":
        address = s.addresses.get(p["address_id"])
        if address is not None:
            for name in p.get("changed", []):
                if name in ADDRESS_FIELDS:
                    address.fields[name] = p.get(name)
            _set_defaults(
                s, address.address_id, p.get("is_default_shipping"), p.get("is_default_billing")
            )
            address.updated_at = e.recorded_at
    elif t == "CustomerAddressRemoved":
        s.addresses.pop(p["address_id"], None)
    elif t == "AvailabilityNotificationSubscribed":
        s.subscriptions[p["subscription_key"]] = dict(p)
    elif t == "AvailabilityNotificationUnsubscribed":
        s.subscriptions.pop(p["subscription_key"], None)


def _set_defaults(
    s: CustomerState, address_id: str, shipping: bool | None, billing: bool | None
) -> None:
    # A flag set true moves the default here; false never clears one.
    for other in s.addresses.values():
        if shipping:
            other.is_default_shipping = other.address_id == address_id
        if billing:
            other.is_default_billing = other.address_id == address_id
    here = s.addresses.get(address_id)
    if here is not None:
        here.is_default_shipping = here.is_default_shipping or bool(shipping)
        here.is_default_billing = here.is_default_billing or bool(billing)
