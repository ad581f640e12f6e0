"""The address-book read model; mirrors the fold in service/domain/customer.py exactly."""

from __future__ import annotations

import uuid

import asyncpg

from events.customer import ADDRESS_FIELDS
from events.types import RecordedEvent
from projections.customers import reference_of
from projections.registry import Projector

projector = Projector(name="addresses", tables=("addresses",))

# Event field names are the column names; the set guards the f-string below.
_COLUMNS = frozenset(ADDRESS_FIELDS)
_FLAGS = {"is_default_shipping": "is_default_shipping", "is_default_billing": "is_default_billing"}


async def _move_defaults(
    conn: asyncpg.Connection, ref: str, address_id: uuid.UUID, payload: dict[str, object]
) -> None:
    # A flag sent true moves that default here (every other address loses it);
    # false or absent never clears one.
    for flag, column in _FLAGS.items():
        if payload.get(flag):
            # Only onto an address the customer holds (as the fold ignores updates of
            # others); a condition in SQL, not on execute()'s status, which a batched
            # rebuild does not know yet.
            await conn.execute(
                f"""UPDATE addresses SET {column} = (uuid = $2) WHERE customer_reference = $1
                    AND EXISTS (SELECT 1 FROM addresses WHERE uuid = $2 AND customer_reference = $1)""",
                ref,
                address_id,
            )


@projector.on("CustomerAddressAdded")
async def _added(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    p = event.payload
    ref = reference_of(event)
    address_id = uuid.UUID(p["address_id"])
    await conn.execute(
        """INSERT INTO addresses (uuid, customer_reference, salutation, first_name, last_name,
               address1, address2, address3, zip_code, city, iso2_code, company, phone,
               created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)""",
        address_id,
        ref,
        *(p.get(name) for name in ADDRESS_FIELDS),
        event.recorded_at,
    )
    await _move_defaults(conn, ref, address_id, p)


@projector.on("CustomerAddressUpdated")
async def _updated(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    p = event.payload
    ref = reference_of(event)
    address_id = uuid.UUID(p["address_id"])
    sets = ["updated_at = $3"]
    args: list[object] = [address_id, ref, event.recorded_at]
    for name in p.get("changed", []):
        if name in _COLUMNS:
            args.append(p.get(name))
            sets.append(f"{name} = ${len(args)}")
    await conn.execute(
        f"UPDATE addresses SET {', '.join(sets)} WHERE uuid = $1 AND customer_reference = $2",
        *args,
    )
    await _move_defaults(conn, ref, address_id, p)


@projector.on("CustomerAddressRemoved")
async def _removed(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    # Removing a default address leaves no default for that purpose.
    await conn.execute(
        "DELETE FROM addresses WHERE uuid = $1 AND customer_reference = $2",
        uuid.UUID(event.payload["address_id"]),
        reference_of(event),
    )


@projector.on("CustomerAnonymized")
async def _anonymized(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    await conn.execute("DELETE FROM addresses WHERE customer_reference = $1", reference_of(event))
