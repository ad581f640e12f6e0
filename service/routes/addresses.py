"""/customers/{ref}/addresses: the customer's address book (SPEC §6)."""

from __future__ import annotations

import uuid

import asyncpg
from aiohttp import web

from events.customer import customer_stream
from service.commands import run
from service.domain import addresses
from service.domain.errors import AddressNotFound, NotOwner
from service.endpoint import endpoint
from service.jsonapi import collection, no_content, single
from service.middlewares import principal_of
from service.resources import address_resource
from service.schemas.addresses import AddressSchema
from service.typedefs import BODY, POOL


def _own_reference(request: web.Request) -> str:
    """The {ref} of the path, when it is the token's own; else 403 802 (unknown refs too)."""
    ref = request.match_info["ref"]
    if principal_of(request).customer_reference != ref:
        raise NotOwner()
    return ref


def _address_id(request: web.Request) -> str:
    """The {address} of the path in canonical UUID form; anything else names no address."""
    raw = request.match_info["address"]
    try:
        parsed = uuid.UUID(raw)
    except ValueError:
        raise AddressNotFound() from None
    # uuid.UUID also reads braces, URNs and bare hex; only the form we hand out is an id.
    if str(parsed) != raw.lower():
        raise AddressNotFound()
    return str(parsed)


async def _row(pool: asyncpg.Pool, ref: str, address_id: str) -> asyncpg.Record:
    row = await pool.fetchrow(
        "SELECT * FROM addresses WHERE uuid = $1 AND customer_reference = $2",
        uuid.UUID(address_id),
        ref,
    )
    if row is None:
        raise AddressNotFound()
    return row


@endpoint(auth="customer", summary="The customer's addresses.")
async def list_addresses(request: web.Request) -> web.Response:
    """Every address of the book, oldest first."""
    ref = _own_reference(request)
    rows = await request.app[POOL].fetch(
        "SELECT * FROM addresses WHERE customer_reference = $1 ORDER BY created_at, uuid", ref
    )
    return collection(request, [address_resource(r) for r in rows])


@endpoint(auth="customer", summary="One address of the customer.")
async def get_address(request: web.Request) -> web.Response:
    """The address, if it is in this customer's book."""
    ref = _own_reference(request)
    row = await _row(request.app[POOL], ref, _address_id(request))
    return single(request, address_resource(row))


@endpoint(auth="customer", body_type="addresses", schema=AddressSchema, summary="Add an address.")
async def add_address(request: web.Request) -> web.Response:
    """Record CustomerAddressAdded under a server-generated UUID."""
    attrs = AddressSchema().check(request[BODY].attributes)
    ref = _own_reference(request)
    # Fixed before the command runs, so a retried decision keeps the same id.
    address_id = str(uuid.uuid4())
    await run(request, customer_stream(ref), lambda s: addresses.add(s, address_id, attrs))
    row = await _row(request.app[POOL], ref, address_id)
    return single(request, address_resource(row), status=201)


@endpoint(
    auth="customer",
    body_type="addresses",
    schema=AddressSchema,
    summary="Change some attributes of an address.",
)
async def patch_address(request: web.Request) -> web.Response:
    """Apply the attributes sent (partial); `country` is derived, never taken."""
    attrs = AddressSchema().check(request[BODY].attributes, partial=True)
    ref = _own_reference(request)
    address_id = _address_id(request)
    await run(request, customer_stream(ref), lambda s: addresses.update(s, address_id, attrs))
    row = await _row(request.app[POOL], ref, address_id)
    return single(request, address_resource(row))


@endpoint(auth="customer", summary="Remove an address.")
async def delete_address(request: web.Request) -> web.Response:
    """Record CustomerAddressRemoved."""
    ref = _own_reference(request)
    address_id = _address_id(request)
    await run(request, customer_stream(ref), lambda s: addresses.remove(s, address_id))
    return no_content()


def setup(app: web.Application) -> None:
    """Register the address-book routes."""
    r = app.router
    path = "/customers/{ref}/addresses"
    # Any segment, braces included, so every non-UUID id gets the Glue 404 rather than
    # the router's (aiohttp's default pattern excludes { and }).
    one = path + "/{address:[^/]+}"
    r.add_get(path, list_addresses, name="addresses-list", allow_head=False)
    r.add_post(path, add_address, name="addresses-add")
    r.add_get(one, get_address, name="addresses-get", allow_head=False)
    r.add_patch(one, patch_address, name="addresses-patch")
    r.add_delete(one, delete_address, name="addresses-delete")
