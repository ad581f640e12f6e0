"""The customer vocabulary: every event type the service records, with its personal fields."""

from __future__ import annotations

from dataclasses import dataclass, field

from events.types import Event, EventRegistry

registry = EventRegistry()

PROFILE_FIELDS = ("email", "salutation", "first_name", "last_name", "gender", "date_of_birth")
ADDRESS_FIELDS = (
    "salutation",
    "first_name",
    "last_name",
    "address1",
    "address2",
    "address3",
    "zip_code",
    "city",
    "iso2_code",
    "company",
    "phone",
)


def customer_stream(reference: str) -> str:
    """The stream id of a customer."""
    return f"customer-{reference}"


def subscription_stream(key: str) -> str:
    """The stream id of an availability subscription made without a customer account."""
    return f"availability-subscription-{key}"


@registry.register
@dataclass(frozen=True)
class CustomerCreated(Event):
    type_name = "CustomerCreated"
    personal = frozenset({*PROFILE_FIELDS, "password_hash"})

    customer_reference: str
    email: str
    salutation: str | None
    first_name: str | None
    last_name: str | None
    gender: str | None
    date_of_birth: str | None  # ISO date
    password_hash: str
    # sha256 of the single-use registration key; the key itself is never stored.
    registration_key_hash: str
    store: str = "DE"


@registry.register
@dataclass(frozen=True)
class CustomerConfirmed(Event):
    type_name = "CustomerConfirmed"

    registration_key_hash: str


@registry.register
@dataclass(frozen=True)
class CustomerUpdated(Event):
    type_name = "CustomerUpdated"
    personal = frozenset(PROFILE_FIELDS)

    # Names of the fields this event changes; the others are not part of it.
    changed: list[str] = field(default_factory=list)
    email: str | None = None
    salutation: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    gender: str | None = None
    date_of_birth: str | None = None


@registry.register
@dataclass(frozen=True)
class CustomerPasswordChanged(Event):
    type_name = "CustomerPasswordChanged"
    personal = frozenset({"password_hash"})

    password_hash: str
    reason: str = "change"  # change | restore | rehash
    restore_key_hash: str | None = None


@registry.register
@dataclass(frozen=True)
class CustomerPasswordResetRequested(Event):
    type_name = "CustomerPasswordResetRequested"

    key_hash: str
    expires_at: str  # ISO-8601 instant


@registry.register
@dataclass(frozen=True)
class CustomerAnonymized(Event):
    type_name = "CustomerAnonymized"

    reason: str = "customer request"


@registry.register
@dataclass(frozen=True)
class CustomerAddressAdded(Event):
    type_name = "CustomerAddressAdded"
    personal = frozenset(ADDRESS_FIELDS)

    address_id: str
    salutation: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    address1: str | None = None
    address2: str | None = None
    address3: str | None = None
    zip_code: str | None = None
    city: str | None = None
    iso2_code: str | None = None
    company: str | None = None
    phone: str | None = None
    is_default_shipping: bool = False
    is_default_billing: bool = False


@registry.register
@dataclass(frozen=True)
class CustomerAddressUpdated(Event):
    type_name = "CustomerAddressUpdated"
    personal = frozenset(ADDRESS_FIELDS)

    address_id: str
    changed: list[str] = field(default_factory=list)
    salutation: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    address1: str | None = None
    address2: str | None = None
    address3: str | None = None
    zip_code: str | None = None
    city: str | None = None
    iso2_code: str | None = None
    company: str | None = None
    phone: str | None = None
    is_default_shipping: bool | None = None
    is_default_billing: bool | None = None


@registry.register
@dataclass(frozen=True)
class CustomerAddressRemoved(Event):
    type_name = "CustomerAddressRemoved"

    address_id: str


@registry.register
@dataclass(frozen=True)
class AvailabilityNotificationSubscribed(Event):
    type_name = "AvailabilityNotificationSubscribed"
    personal = frozenset({"email"})

    subscription_key: str
    email: str | None
    sku: str
    locale_name: str
    customer_reference: str | None = None


@registry.register
@dataclass(frozen=True)
class AvailabilityNotificationUnsubscribed(Event):
    type_name = "AvailabilityNotificationUnsubscribed"

    subscription_key: str
