"""/access-tokens (login) and the public keys that verify the tokens."""

from __future__ import annotations

from aiohttp import web

from service.auth.login import client_address, password_login
from service.endpoint import endpoint
from service.jsonapi import single
from service.resources import token_pair_resource
from service.schemas.auth import LoginSchema
from service.typedefs import BODY, TOKENS


@endpoint(auth="optional", body_type="access-tokens", summary="Log a customer in.")
async def create_access_token(request: web.Request) -> web.Response:
    """201 with an access and a refresh token; 401 003 for any bad credential, 429 4401 blocked."""
    attrs = LoginSchema().check(request[BODY].attributes)
    pair = await password_login(
        request.app, attrs["username"], attrs["password"], client_address(request)
    )
    return single(request, token_pair_resource("access-tokens", pair), status=201)


@endpoint(summary="Public keys that verify access tokens (JWKS).", content_type="application/json")
async def jwks(request: web.Request) -> web.Response:
    """The JSON Web Key Set."""
    return web.Response(
        text=request.app[TOKENS].jwks_json(),
        content_type="application/json",
        headers={"Cache-Control": "public, max-age=300"},
    )


def setup(app: web.Application) -> None:
    """Register login and JWKS."""
    app.router.add_post("/access-tokens", create_access_token, name="access-tokens")
    app.router.add_get("/.well-known/jwks.json", jwks, name="jwks", allow_head=False)
