"""What each route declares about itself: the middlewares and the OpenAPI read it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from service.errors import GlueErrorObject

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Auth = Literal["none", "optional", "customer", "client", "any"]


@dataclass(frozen=True)
class Endpoint:
    """Route facts checked before the handler runs, in the SPEC's order."""

    auth: Auth = "none"
    # JSON:API resource type a body must carry; None: the route takes no JSON:API body.
    body_type: str | None = None
    # Set on the id-less twin of a PATCH/DELETE route: the error to answer once
    # the body passed its shape check (e.g. 405 "Customer reference is missing.").
    missing_id: GlueErrorObject | None = None
    # Scope a client token must hold (auth "client" or "any").
    scope: str | None = None
    # False: the route reads `Authorization` itself (OAuth client authentication,
    # RFC 6749 §2.3, e.g. HTTP Basic), so the middleware checks no bearer token.
    bearer: bool = True
    summary: str = ""
    # For the OpenAPI document (service/openapi.py); all optional.
    # The marshmallow schema class of the body's attributes.
    schema: type | None = None
    # The success status when not the method's usual one (POST 201, DELETE 204, else 200).
    status: int | None = None
    # The success response's media type.
    content_type: str = "application/vnd.api+json"
    # Extra OpenAPI response objects by status ("200", "503", ...), merged over the defaults.
    responses: Mapping[str, Any] | None = None
    # A raw OpenAPI requestBody for routes that take no JSON:API body (e.g. a form).
    request_body: Mapping[str, Any] | None = None
    # Query parameters the route reads, as OpenAPI parameter objects.
    query: tuple[Mapping[str, Any], ...] = ()


def endpoint(**kwargs: object) -> Callable[[Handler], Handler]:
    """Attach an Endpoint to a handler."""
    spec = Endpoint(**kwargs)  # type: ignore[arg-type]

    def decorate(handler: Handler) -> Handler:
        handler.endpoint = spec  # type: ignore[attr-defined]
        return handler

    return decorate


def endpoint_of(request: web.Request) -> Endpoint:
    """The Endpoint of the matched route (a default one for framework routes)."""
    handler = getattr(request.match_info, "handler", None)
    return getattr(handler, "endpoint", None) or Endpoint()
