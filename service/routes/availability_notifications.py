"""/availability-notifications: tell me when a product is back (SPEC §7)."""

from __future__ import annotations

import secrets

import asyncpg
from aiohttp import web

from events.customer import customer_stream, subscription_stream
from service.commands import run
from service.domain import subscriptions
from service.domain.errors import NotSubscriptionOwner, SubscriptionExists, SubscriptionNotFound
from service.endpoint import endpoint
from service.jsonapi import MAX_OFFSET, Page, collection, no_content, single
from service.middlewares import locale_of, principal_of
from service.resources import subscription_resource
from service.schemas.availability import SubscriptionSchema
from service.typedefs import BODY, POOL, PRINCIPAL, PRODUCTS

_TABLE = "availability_subscriptions"
PAGE_QUERY = (
    {
        "name": "page[offset]",
        "in": "query",
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
    },
    {
        "name": "page[limit]",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 10},
    },
)


@endpoint(
    auth="optional",
    body_type="availability-notifications",
    schema=SubscriptionSchema,
    summary="Subscribe to a product.",
    responses={"503": {"description": "The product lookup is unreachable or failing."}},
)
async def subscribe(request: web.Request) -> web.Response:
    """With a customer token the subscription is the customer's; without, it stands alone."""
    attrs = SubscriptionSchema().check(request[BODY].attributes)
    email: str = attrs["email"]
    sku: str = attrs["sku"]
    principal = request.get(PRINCIPAL)
    ref = principal.customer_reference if principal is not None else None
    await request.app[PRODUCTS].require(sku)
    pool = request.app[POOL]
    # A fast answer for the common case; the unique key below decides under races.
    if await pool.fetchval(
        f"SELECT 1 FROM {_TABLE} WHERE email_lower = $1 AND sku = $2", email.lower(), sku
    ):
        raise SubscriptionExists()
    # The key is the subscription's id and the secret that unsubscribes it.
    key = secrets.token_hex(16)
    stream = customer_stream(ref) if ref is not None else subscription_stream(key)
    locale = locale_of(request)
    try:
        await run(
            request,
            stream,
            lambda s: subscriptions.subscribe(s, key, email, sku, locale, ref),
        )
    except asyncpg.UniqueViolationError as exc:
        if exc.table_name == _TABLE:
            raise SubscriptionExists() from None
        raise
    row = await pool.fetchrow(f"SELECT * FROM {_TABLE} WHERE subscription_key = $1", key)
    return single(request, subscription_resource(row), status=201)


@endpoint(auth="optional", summary="Unsubscribe by subscription key.")
async def unsubscribe(request: web.Request) -> web.Response:
    """Whoever holds the key may unsubscribe: it is the secret Glue's unsubscribe links carry."""
    key = request.match_info["key"]
    row = await request.app[POOL].fetchrow(
        f"SELECT customer_reference FROM {_TABLE} WHERE subscription_key = $1", key
    )
    if row is None:
        raise SubscriptionNotFound()
    ref = row["customer_reference"]
    stream = customer_stream(ref) if ref is not None else subscription_stream(key)
    await run(request, stream, lambda s: subscriptions.unsubscribe(s, key))
    return no_content()


async def _page_of(request: web.Request, ref: str) -> web.Response:
    """One page of a customer's subscriptions, oldest first, with first/prev/next/last."""
    page = Page.from_request(request)
    pool = request.app[POOL]
    total = await pool.fetchval(f"SELECT count(*) FROM {_TABLE} WHERE customer_reference = $1", ref)
    rows = await pool.fetch(
        f"""SELECT * FROM {_TABLE} WHERE customer_reference = $1
            ORDER BY created_at, subscription_key OFFSET $2 LIMIT $3""",
        ref,
        page.offset,
        page.limit,
    )
    return collection(request, [subscription_resource(r) for r in rows], page.links(request, total))


@endpoint(
    auth="customer",
    summary="The token's customer's subscriptions (paginated).",
    query=PAGE_QUERY,
)
async def my_subscriptions(request: web.Request) -> web.Response:
    """The subscriptions made with this customer's token."""
    return await _page_of(request, principal_of(request).customer_reference or "")


@endpoint(auth="customer", summary="A customer's subscriptions (paginated).", query=PAGE_QUERY)
async def customer_subscriptions(request: web.Request) -> web.Response:
    """Only the token's own customer; anyone else's answers 4606."""
    ref = request.match_info["ref"]
    if principal_of(request).customer_reference != ref:
        raise NotSubscriptionOwner()
    return await _page_of(request, ref)


def setup(app: web.Application) -> None:
    """Register the availability-notification routes."""
    r = app.router
    r.add_post("/availability-notifications", subscribe, name="availability-subscribe")
    r.add_delete("/availability-notifications/{key}", unsubscribe, name="availability-unsubscribe")
    r.add_get(
        "/my-availability-notifications",
        my_subscriptions,
        name="availability-mine",
        allow_head=False,
    )
    r.add_get(
        "/customers/{ref}/availability-notifications",
        customer_subscriptions,
        name="availability-of-customer",
        allow_head=False,
    )
