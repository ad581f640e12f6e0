"""/access-tokens (login) and the public keys that verify the tokens."""

from __future__ import annotations

from aiohttp import web

from service.auth.login import authenticate, issue_pair
from service.domain.errors import AuthenticationFailed
from service.endpoint import endpoint
from service.jsonapi import base_url, respond
from service.schemas.auth import LoginSchema
from service.typedefs import BLOCKER, BODY, TOKENS


def _client_address(request: web.Request) -> str:
    return request.remote or "unknown"


@endpoint(auth="optional", body_type="access-tokens", summary="Log a customer in.")
async def create_access_token(request: web.Request) -> web.Response:
    """201 with an access and a refresh token; 401 003 for any bad credential."""
    attrs = LoginSchema().check(request[BODY].attributes)
    app = request.app
    blocker = app.get(BLOCKER)
    if blocker is not None:
        await blocker.check(attrs["username"], _client_address(request))
    try:
        reference, generation = await authenticate(app, attrs["username"], attrs["password"])
    except AuthenticationFailed:
        if blocker is not None:
            await blocker.record_failure(attrs["username"], _client_address(request))
        raise
    pair = await issue_pair(app, reference, generation)
    doc = {
        "data": {
            "type": "access-tokens",
            "id": None,
            "attributes": {
                "tokenType": "Bearer",
                "expiresIn": pair.expires_in,
                "accessToken": pair.access_token,
                "refreshToken": pair.refresh_token,
                "refreshTokenExpiresIn": pair.refresh_expires_in,
                "idCompanyUser": None,
            },
            "links": {"self": base_url(request) + "/access-tokens"},
        }
    }
    return respond(doc, status=201)


@endpoint(summary="Public keys that verify access tokens (JWKS).")
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
