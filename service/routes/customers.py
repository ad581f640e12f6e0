"""/customers: registration, read, partial update, anonymisation."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
from aiohttp import web

from events.customer import (
    PROFILE_FIELDS,
    CustomerAnonymized,
    CustomerCreated,
    CustomerUpdated,
    customer_stream,
)
from events.types import Event, NewEvent
from service.auth import refresh
from service.auth.onetime import REGISTRATION, key_hash
from service.commands import metadata_of, run
from service.domain.customer import CustomerState
from service.domain.errors import (
    CustomerNotFound,
    EmailTaken,
    NotOwner,
)
from service.domain.passwords import require_new_password
from service.endpoint import endpoint
from service.errors import REFERENCE_MISSING
from service.jsonapi import Body, collection, includes, no_content, single
from service.middlewares import principal_of
from service.resources import address_resource, customer_resource
from service.schemas.customers import ProfileSchema, RegistrationSchema
from service.typedefs import BODY, CLOCK, HASHER, ONETIME, POOL, SETTINGS, STORE

# Schemas hold no per-request state; building one per request costs more than loading.
_PROFILE = ProfileSchema()
_REGISTRATION = RegistrationSchema()


def is_unique_violation_of(exc: asyncpg.UniqueViolationError, table: str) -> bool:
    """Whether a unique violation came from a given table's keys."""
    return (exc.table_name or "") == table or (exc.constraint_name or "").startswith(table)


async def _row(pool: asyncpg.Pool, ref: str) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT * FROM customers WHERE customer_reference = $1", ref)


async def _email_holder(pool: asyncpg.Pool, email: str) -> str | None:
    return await pool.fetchval(
        "SELECT customer_reference FROM customer_emails WHERE email_lower = $1", email.lower()
    )


@endpoint(auth="optional", body_type="customers", summary="Register a customer.")
async def register(request: web.Request) -> web.Response:
    """Validate, hash the password off the loop, reserve the email and record CustomerCreated."""
    body: Body = request[BODY]
    attrs = _REGISTRATION.check(body.attributes)
    password: str = attrs["password"]
    require_new_password(password, attrs["confirm_password"])
    app = request.app
    # A cheap early answer, and the customer number in the same round trip (a number
    # taken for a registration that fails is a gap, as with any sequence). The
    # reservation's unique key is what decides under races.
    row = await app[POOL].fetchrow(
        """SELECT (SELECT customer_reference FROM customer_emails WHERE email_lower = $1)
                      AS holder,
                  nextval('customer_reference_seq') AS number""",
        attrs["email"].lower(),
    )
    if row["holder"] is not None:
        raise EmailTaken()
    password_hash = await app[HASHER].hash(password)
    ref = f"{app[SETTINGS].store}--{row['number']}"
    event_id = uuid.uuid4()
    registration_key = app[ONETIME].key(REGISTRATION, event_id)
    event = CustomerCreated(
        customer_reference=ref,
        email=attrs["email"],
        salutation=attrs["salutation"],
        first_name=attrs["first_name"],
        last_name=attrs["last_name"],
        gender=attrs.get("gender"),
        date_of_birth=attrs.get("date_of_birth"),
        password_hash=password_hash,
        registration_key_hash=key_hash(registration_key),
        store=app[SETTINGS].store,
    )
    metadata = metadata_of(request, customer=ref)  # registering oneself
    try:
        # On its own: the store writes the event, the customer row and the email
        # reservation in one statement.
        recorded = await app[STORE].append(
            customer_stream(ref), [NewEvent(event, event_id)], 0, metadata
        )
    except asyncpg.UniqueViolationError as exc:
        if is_unique_violation_of(exc, "customer_emails"):
            raise EmailTaken() from None
        raise
    # The projection wrote exactly this row in the same transaction; no need to read it back.
    at = recorded[0].recorded_at
    row = {**event.to_payload(), "created_at": at, "updated_at": at}
    return single(request, customer_resource(row), status=201)


@endpoint(auth="customer", summary="The token's customer, as a collection of one.")
async def list_customers(request: web.Request) -> web.Response:
    """Exactly the token's customer."""
    ref = principal_of(request).customer_reference
    row = await _row(request.app[POOL], ref or "")
    return collection(request, [customer_resource(row)] if row is not None else [])


@endpoint(auth="customer", summary="One customer (the token's own).")
async def get_customer(request: web.Request) -> web.Response:
    """The customer, with its addresses when `include=addresses`."""
    ref = request.match_info["ref"]
    if principal_of(request).customer_reference != ref:
        raise CustomerNotFound()
    pool = request.app[POOL]
    row = await _row(pool, ref)
    if row is None:
        raise CustomerNotFound()
    resource = customer_resource(row)
    if "addresses" in includes(request):
        rows = await pool.fetch(
            "SELECT * FROM addresses WHERE customer_reference = $1 ORDER BY created_at, uuid", ref
        )
        resource.relationships["addresses"] = [address_resource(r) for r in rows]
    return single(request, resource)


@endpoint(auth="customer", body_type="customers", summary="Change some attributes of a customer.")
async def patch_customer(request: web.Request) -> web.Response:
    """Apply the attributes sent; email stays unique."""
    ref = request.match_info["ref"]
    attrs = _PROFILE.check(request[BODY].attributes, partial=True)
    if principal_of(request).customer_reference != ref:
        raise NotOwner()
    pool = request.app[POOL]
    if "email" in attrs:
        holder = await _email_holder(pool, attrs["email"])
        if holder is not None and holder != ref:
            raise EmailTaken()

    def decide(state: CustomerState) -> Sequence[Event]:
        if not state.exists:
            raise CustomerNotFound()
        changed = [
            name
            for name in PROFILE_FIELDS
            if name in attrs and attrs[name] != state.profile.get(name)
        ]
        if not changed:
            return []
        values: dict[str, Any] = {name: attrs[name] for name in changed}
        return [CustomerUpdated(changed=changed, **values)]

    try:
        outcome = await run(request, customer_stream(ref), decide)
    except asyncpg.UniqueViolationError as exc:
        if is_unique_violation_of(exc, "customer_emails"):
            raise EmailTaken() from None
        raise
    # The state the command folded is what the projection just wrote (same events,
    # same recorded_at), so the answer needs no second read.
    state = outcome.state
    row = {
        **state.profile,
        "customer_reference": ref,
        "created_at": state.created_at,
        "updated_at": state.updated_at,
    }
    return single(request, customer_resource(row))


@endpoint(auth="customer", summary="Anonymise a customer.")
async def delete_customer(request: web.Request) -> web.Response:
    """Record CustomerAnonymized, destroy the data key, revoke every token."""
    ref = request.match_info["ref"]
    if principal_of(request).customer_reference != ref:
        raise NotOwner()
    store = request.app[STORE]
    stream = customer_stream(ref)
    now = request.app[CLOCK].now()

    def decide(state: CustomerState) -> Sequence[Event]:
        if not state.exists:
            raise CustomerNotFound()
        return [CustomerAnonymized()]

    async def shred(conn: asyncpg.Connection, state: CustomerState) -> None:
        await store.erase(conn, stream)
        await refresh.revoke_all(conn, ref, now)

    await run(request, stream, decide, after=shred)
    return no_content()


@endpoint(auth="customer", body_type="customers", missing_id=REFERENCE_MISSING)
async def patch_without_reference(request: web.Request) -> web.Response:  # pragma: no cover
    """Never reached: the checks middleware answers 405 first."""
    raise AssertionError


@endpoint(auth="customer", missing_id=REFERENCE_MISSING)
async def delete_without_reference(request: web.Request) -> web.Response:  # pragma: no cover
    """Never reached: the checks middleware answers 405 first."""
    raise AssertionError


def setup(app: web.Application) -> None:
    """Register the /customers routes."""
    r = app.router
    r.add_post("/customers", register, name="customers-register")
    r.add_get("/customers", list_customers, name="customers-list", allow_head=False)
    r.add_patch("/customers", patch_without_reference, name="customers-patch-no-ref")
    r.add_delete("/customers", delete_without_reference, name="customers-delete-no-ref")
    r.add_get("/customers/{ref}", get_customer, name="customers-get", allow_head=False)
    r.add_patch("/customers/{ref}", patch_customer, name="customers-patch")
    r.add_delete("/customers/{ref}", delete_customer, name="customers-delete")
