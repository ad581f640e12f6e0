"""/audit/customers: a customer's history and time travel, for auditors (SPEC §9)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from events.customer import customer_stream
from service.domain.customer import CustomerState, fold
from service.domain.errors import CustomerNotFound
from service.endpoint import endpoint
from service.errors import AS_OF_INVALID, GlueError
from service.event_view import event_item
from service.jsonapi import Resource, base_url, respond, single, timestamp
from service.resources import address_resource, customer_resource
from service.typedefs import STORE

_AS_OF = (
    {
        "name": "asOf",
        "in": "query",
        "description": "ISO-8601 instant (UTC when it names no offset); default: now.",
        "schema": {"type": "string", "format": "date-time"},
    },
)


@endpoint(
    auth="client",
    scope="audit:read",
    summary="A customer's whole stream, each event with who caused it and in which request.",
)
async def customer_events(request: web.Request) -> web.Response:
    """Every event of the customer's stream, oldest first (personal fields null once erased)."""
    ref = request.match_info["ref"]
    events = await request.app[STORE].read_stream(customer_stream(ref))
    if not events:
        raise CustomerNotFound()
    return respond(
        {
            "data": [event_item(e) for e in events],
            "links": {"self": base_url(request) + str(request.rel_url)},
        }
    )


@endpoint(
    auth="client",
    scope="audit:read",
    summary="A customer and its addresses as they stood at an instant, folded from the log.",
    query=_AS_OF,
)
async def customer_as_of(request: web.Request) -> web.Response:
    """404 402 when the customer did not exist yet at that instant."""
    ref = request.match_info["ref"]
    raw = request.query.get("asOf")
    as_of = parse_instant(raw) if raw is not None else None
    state = fold(await request.app[STORE].read_stream(customer_stream(ref), as_of=as_of))
    if state.version == 0:
        raise CustomerNotFound()
    resource = _as_resource(ref, state, as_of)
    if raw is not None:
        resource.path += "?" + urlencode({"asOf": raw})
    return single(request, resource)


def parse_instant(raw: str) -> datetime:
    """An ISO-8601 date-time as a UTC instant; naive ones are UTC. 400 otherwise.

    A `+01:00` offset sent unencoded arrives as ` 01:00` (a query's `+` is a
    space), so that reading is tried too.
    """
    for candidate in (raw, raw.replace(" ", "+")):
        try:
            instant = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        if instant.tzinfo is None:
            return instant.replace(tzinfo=UTC)
        try:
            return instant.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00+00:01, whose UTC lies before year 1
            raise GlueError(AS_OF_INVALID) from None
    raise GlueError(AS_OF_INVALID)


def _as_resource(ref: str, state: CustomerState, as_of: datetime | None) -> Resource:
    row: dict[str, Any] = {
        "customer_reference": ref,
        **state.profile,
        "created_at": state.created_at,
        "updated_at": state.updated_at,
    }
    resource = customer_resource(row)
    resource.path = f"/audit/customers/{ref}"
    resource.attributes.update(
        isConfirmed=state.confirmed,
        isAnonymized=state.anonymized,
        version=state.version,
        asOf=timestamp(as_of),
    )
    addresses = sorted(state.addresses.values(), key=lambda a: (a.created_at, a.address_id))
    resource.relationships["addresses"] = [
        address_resource(
            {
                "uuid": a.address_id,
                "customer_reference": ref,
                **a.fields,
                "is_default_shipping": a.is_default_shipping,
                "is_default_billing": a.is_default_billing,
            }
        )
        for a in addresses
    ]
    return resource


def setup(app: web.Application) -> None:
    """Register the audit routes."""
    r = app.router
    r.add_get(
        "/audit/customers/{ref}/events", customer_events, name="audit-events", allow_head=False
    )
    r.add_get("/audit/customers/{ref}", customer_as_of, name="audit-customer", allow_head=False)
