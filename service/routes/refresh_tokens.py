"""/refresh-tokens: rotate a refresh token into a new pair; revoke one or all of the caller's."""

from __future__ import annotations

from aiohttp import web

from service.auth import refresh
from service.auth.login import TokenPair, refreshed_pair
from service.endpoint import endpoint
from service.jsonapi import Resource, no_content, single
from service.middlewares import principal_of
from service.schemas.tokens import RefreshTokenSchema
from service.typedefs import BODY, CLOCK, POOL


def token_pair_resource(resource_type: str, pair: TokenPair) -> Resource:
    """The Glue token document's resource (`id` null) for a fresh pair."""
    return Resource(
        type=resource_type,
        id=None,
        attributes={
            "tokenType": "Bearer",
            "expiresIn": pair.expires_in,
            "accessToken": pair.access_token,
            "refreshToken": pair.refresh_token,
            "refreshTokenExpiresIn": pair.refresh_expires_in,
            "idCompanyUser": None,
        },
        path=f"/{resource_type}",
    )


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
