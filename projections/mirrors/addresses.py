"""Mirror of projections/addresses.py: the address book."""

from __future__ import annotations

import uuid
from collections.abc import Hashable

from events.customer import ADDRESS_FIELDS
from events.types import RecordedEvent
from projections.mirrors.base import Mirror, Row, Tables, delete_where, insert, reference_of

mirror = Mirror(
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


@mirror.on("CustomerAddressAdded")
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
    insert(t["addresses"], address_id, row)
    _move_defaults(t["addresses"], ref, address_id, p)


@mirror.on("CustomerAddressUpdated")
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


@mirror.on("CustomerAddressRemoved")
def _address_removed(t: Tables, e: RecordedEvent) -> None:
    address_id = uuid.UUID(e.payload["address_id"])
    row = t["addresses"].get(address_id)
    if row is not None and row["customer_reference"] == reference_of(e):
        del t["addresses"][address_id]


@mirror.on("CustomerAnonymized")
def _addresses_anonymized(t: Tables, e: RecordedEvent) -> None:
    delete_where(t["addresses"], "customer_reference", reference_of(e))
