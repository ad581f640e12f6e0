"""Address-book decisions: pure functions over a folded CustomerState."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from events.customer import (
    ADDRESS_FIELDS,
    CustomerAddressAdded,
    CustomerAddressRemoved,
    CustomerAddressUpdated,
)
from events.types import Event
from service.domain.customer import AddressState, CustomerState
from service.domain.errors import AddressNotFound, NotOwner


def _book(state: CustomerState) -> dict[str, AddressState]:
    # The token outlived the account only in a race with anonymisation.
    if not state.exists:
        raise NotOwner()
    return state.addresses


def add(state: CustomerState, address_id: str, attrs: Mapping[str, Any]) -> list[Event]:
    """Add an address; the first one of an empty book becomes both defaults."""
    first = not _book(state)
    return [
        CustomerAddressAdded(
            address_id=address_id,
            **{name: attrs.get(name) for name in ADDRESS_FIELDS},
            is_default_shipping=first or bool(attrs["is_default_shipping"]),
            is_default_billing=first or bool(attrs["is_default_billing"]),
        )
    ]


def update(state: CustomerState, address_id: str, attrs: Mapping[str, Any]) -> list[Event]:
    """Change the attributes sent; a flag sent true moves that default, false changes nothing."""
    address = _book(state).get(address_id)
    if address is None:
        raise AddressNotFound()
    changed = [n for n in ADDRESS_FIELDS if n in attrs and attrs[n] != address.fields.get(n)]
    shipping = (
        True if attrs.get("is_default_shipping") and not address.is_default_shipping else None
    )
    billing = True if attrs.get("is_default_billing") and not address.is_default_billing else None
    if not changed and shipping is None and billing is None:
        return []
    return [
        CustomerAddressUpdated(
            address_id=address_id,
            changed=changed,
            **{name: attrs[name] for name in changed},
            is_default_shipping=shipping,
            is_default_billing=billing,
        )
    ]


def remove(state: CustomerState, address_id: str) -> list[Event]:
    """Remove an address; if it was a default, that default is left unset."""
    if address_id not in _book(state):
        raise AddressNotFound()
    return [CustomerAddressRemoved(address_id=address_id)]
