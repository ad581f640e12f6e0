"""/token: the OAuth 2.0 token endpoint (RFC 6749), answering plain JSON rather than JSON:API.

Its errors are RFC 6749 §5.2 bodies (`error`, `error_description`) built here, not
Glue error documents, so they never reach the JSON:API error middleware.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import unquote_plus

from aiohttp import web

from service.auth.clients import OAuthClients
from service.auth.login import TokenPair, client_address, password_login, refreshed_pair
from service.config import OAuthClient
from service.domain.errors import AuthenticationFailed, RefreshFailed, TooManyLoginAttempts
from service.endpoint import endpoint
from service.errors import AUTH_FAILED, REFRESH_FAILED, TOO_MANY_LOGINS, GlueError
from service.middlewares import read_body
from service.typedefs import SETTINGS, TOKENS

FORM = "application/x-www-form-urlencoded"
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="glue-customers"'}
# RFC 6749 §5.1: token responses must not be cached.
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

Params = Mapping[str, str]


class OAuthError(Exception):
    """An RFC 6749 §5.2 error answer."""

    def __init__(
        self,
        error: str,
        description: str,
        status: int = 400,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.headers = dict(headers or {})


def _answer(
    body: dict[str, Any], status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(body, status=status, headers={**_NO_STORE, **(headers or {})})


def _params(form: Mapping[str, Any], repeated: list[str]) -> dict[str, str]:
    if repeated:
        raise OAuthError("invalid_request", f"Parameter {repeated[0]} is repeated.")
    # §3.1: a parameter sent without a value counts as omitted.
    return {k: v for k, v in form.items() if isinstance(v, str) and v != ""}


def _basic(header: str) -> tuple[str, str]:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise OAuthError("invalid_client", "Client authentication failed.", 401, _CHALLENGE)
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError(
            "invalid_client", "Client authentication failed.", 401, _CHALLENGE
        ) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise OAuthError("invalid_client", "Client authentication failed.", 401, _CHALLENGE)
    # §2.3.1: both parts are form-encoded before they are joined.
    return unquote_plus(client_id), unquote_plus(secret)


def _client(request: web.Request, params: Params, required: bool) -> OAuthClient | None:
    """The authenticated client: HTTP Basic or client_id/client_secret form fields (§2.3.1).

    Optional for the customer grants, but credentials that are sent must be right.
    """
    header = request.headers.get("Authorization")
    if header is not None:
        if "client_secret" in params:
            raise OAuthError("invalid_request", "Use one client authentication method, not two.")
        client_id, secret = _basic(header)
    elif "client_id" in params and "client_secret" in params:
        client_id, secret = params["client_id"], params["client_secret"]
    elif required:
        raise OAuthError("invalid_client", "Client authentication failed.", 401, _CHALLENGE)
    else:
        return None
    client = OAuthClients(request.app[SETTINGS].oauth_clients).authenticate(client_id, secret)
    if client is None:
        raise OAuthError("invalid_client", "Client authentication failed.", 401, _CHALLENGE)
    return client


def _pair(pair: TokenPair) -> dict[str, Any]:
    return {
        "access_token": pair.access_token,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
        "refresh_token": pair.refresh_token,
    }


async def _password(
    request: web.Request, params: Params, client: OAuthClient | None
) -> dict[str, Any]:
    username, password = params.get("username"), params.get("password")
    if username is None or password is None:
        raise OAuthError("invalid_request", "The password grant needs username and password.")
    try:
        pair = await password_login(request.app, username, password, client_address(request))
    except AuthenticationFailed:
        raise OAuthError("invalid_grant", AUTH_FAILED.detail) from None
    except TooManyLoginAttempts:
        raise OAuthError("invalid_grant", TOO_MANY_LOGINS.detail, TOO_MANY_LOGINS.status) from None
    return _pair(pair)


async def _refresh(
    request: web.Request, params: Params, client: OAuthClient | None
) -> dict[str, Any]:
    token = params.get("refresh_token")
    if token is None:
        raise OAuthError("invalid_request", "The refresh_token grant needs refresh_token.")
    try:
        pair = await refreshed_pair(request.app, token)
    except RefreshFailed:
        raise OAuthError("invalid_grant", REFRESH_FAILED.detail) from None
    return _pair(pair)


async def _client_credentials(
    request: web.Request, params: Params, client: OAuthClient | None
) -> dict[str, Any]:
    if client is None:  # _client already insists; kept so -O cannot turn it into a crash
        raise OAuthError("invalid_client", "Client authentication failed.", 401, _CHALLENGE)
    scopes = OAuthClients.granted_scopes(client, params.get("scope"))
    if scopes is None:
        raise OAuthError("invalid_scope", "The requested scope exceeds the client's scopes.")
    tokens = request.app[TOKENS]
    return {
        "access_token": tokens.issue_client(client.id, scopes),
        "token_type": "Bearer",
        "expires_in": tokens.access_ttl,
        "scope": " ".join(scopes),
    }


Grant = Callable[[web.Request, Params, OAuthClient | None], Awaitable[dict[str, Any]]]
_GRANTS: dict[str, Grant] = {
    "password": _password,
    "refresh_token": _refresh,
    "client_credentials": _client_credentials,
}

_FORM_SCHEMA = {
    "type": "object",
    "required": ["grant_type"],
    "properties": {
        "grant_type": {"enum": list(_GRANTS)},
        "username": {"type": "string"},
        "password": {"type": "string"},
        "refresh_token": {"type": "string"},
        "scope": {"type": "string"},
        "client_id": {"type": "string"},
        "client_secret": {"type": "string"},
    },
}
_OAUTH_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
}


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _OAUTH_ERROR}}}


@endpoint(
    auth="none",
    bearer=False,
    status=200,
    content_type="application/json",
    request_body={"required": True, "content": {FORM: {"schema": _FORM_SCHEMA}}},
    responses={
        "400": _error_response("invalid_request, invalid_grant, unsupported_grant_type"),
        "401": _error_response("invalid_client"),
        "408": _error_response("invalid_request: the body did not arrive in time"),
        "413": _error_response("invalid_request: the body is over 1 MiB"),
        "429": _error_response("invalid_grant: too many failed logins"),
    },
    summary="OAuth 2.0 token endpoint: password, refresh_token and client_credentials grants.",
)
async def token(request: web.Request) -> web.Response:
    """200 with a token (RFC 6749 §5.1), or an RFC 6749 §5.2 error."""
    try:
        return _answer(await _grant(request))
    except OAuthError as exc:
        body = {"error": exc.error, "error_description": exc.description}
        return _answer(body, exc.status, exc.headers)


async def _grant(request: web.Request) -> dict[str, Any]:
    if request.content_type != FORM:
        raise OAuthError("invalid_request", f"The request body must be {FORM}.")
    try:
        await read_body(request)  # within the limits every body has; post() parses it
    except GlueError as exc:
        failure = exc.errors[-1]
        raise OAuthError("invalid_request", failure.detail, failure.status, exc.headers) from None
    form = await request.post()
    repeated = [k for k in dict.fromkeys(form.keys()) if len(form.getall(k)) > 1]
    params = _params(form, repeated)
    grant_type = params.get("grant_type")
    if grant_type is None:
        raise OAuthError("invalid_request", "grant_type is missing.")
    grant = _GRANTS.get(grant_type)
    if grant is None:
        raise OAuthError("unsupported_grant_type", "The grant type is not supported.")
    client = _client(request, params, required=grant_type == "client_credentials")
    return await grant(request, params, client)


def setup(app: web.Application) -> None:
    """Register the token endpoint."""
    app.router.add_post("/token", token, name="oauth-token")
