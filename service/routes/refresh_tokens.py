"""/refresh-tokens: rotate a refresh token into a new pair; revoke one or all of the caller's."""

from __future__ import annotations

from aiohttp import web

from service.auth import refresh
from service.auth.login import refreshed_pair
from service.endpoint import endpoint
from service.jsonapi import no_content, single
from service.middlewares import principal_of
from service.resources import token_pair_resource
from service.schemas.tokens import RefreshTokenSchema
from service.typedefs import BODY, CLOCK, POOL


@endpoint(
    auth="optional",
    body_type="refresh-tokens",
    schema=RefreshTokenSchema,
    summary="Swap a refresh token for a new access and refresh token.",
)
async def create_refresh_token(request: web.Request) -> web.Response:
    """201 with a new pair; the presented token is revoked. 401 004 for any unusable token."""
    attrs = RefreshTokenSchema().check(request[BODY].attributes)
    pair = await refreshed_pair(request.app, attrs["refresh_token"])
    return single(request, token_pair_resource("refresh-tokens", pair), status=201)


@endpoint(auth="customer", summary="Revoke every refresh token of the caller.")
async def revoke_mine(request: web.Request) -> web.Response:
    """204 always."""
    ref = principal_of(request).customer_reference or ""
    await refresh.revoke_all(request.app[POOL], ref, request.app[CLOCK].now())
    return no_content()


@endpoint(auth="customer", summary="Revoke one refresh token of the caller.")
async def revoke_one(request: web.Request) -> web.Response:
    """204 always; a token of someone else (or none at all) stays as it is."""
    ref = principal_of(request).customer_reference or ""
    token = request.match_info["token"]
    await refresh.revoke(request.app[POOL], token, ref, request.app[CLOCK].now())
    return no_content()


def setup(app: web.Application) -> None:
    """Register the /refresh-tokens routes (`mine` before the token route it would match)."""
    r = app.router
    r.add_post("/refresh-tokens", create_refresh_token, name="refresh-tokens")
    r.add_delete("/refresh-tokens/mine", revoke_mine, name="refresh-tokens-revoke-mine")
    r.add_delete("/refresh-tokens/{token}", revoke_one, name="refresh-tokens-revoke")
