"""The request pipeline: request id and error mapping, then the SPEC's check order."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
import uuid

import asyncpg
from aiohttp import web

from service.auth.tokens import InvalidToken, Principal
from service.domain.errors import DomainError
from service.endpoint import Handler, endpoint_of
from service.errors import (
    BEARER,
    INTERNAL,
    INVALID_ACCESS_TOKEN,
    MISSING_ACCESS_TOKEN,
    NOT_FOUND,
    PAYLOAD_TOO_LARGE,
    POST_DATA_INVALID,
    REQUEST_TIMEOUT,
    SERVICE_UNAVAILABLE,
    UNAUTHORIZED,
    UNSTORABLE_TEXT,
    UNSUPPORTED_MEDIA_TYPE,
    GlueError,
    error,
    from_domain,
)
from service.jsonapi import BODY_TYPES, error_response, parse_body
from service.logs import request_id_var
from service.typedefs import BODY, METRICS, POOL, PRINCIPAL, REQUEST_ID, SETTINGS, TOKEN_CACHE

log = logging.getLogger("glue.http")
access = logging.getLogger("glue.access")
# What an identifier sent by a client (X-Request-Id, X-Correlation-Id) may look like.
ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_UNSTORABLE = (asyncpg.CharacterNotInRepertoireError, asyncpg.UntranslatableCharacterError)
_DB_DOWN = (
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
    # A server shutting down ends running statements (57P01 and friends), and a
    # connection cut mid-statement can be left in a state asyncpg refuses to use.
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    asyncpg.InternalClientError,
    ConnectionError,
    TimeoutError,
)


def locale_of(request: web.Request) -> str:
    """The configured locale `Accept-Language` asks for (the first configured one if none).

    Language ranges are tried by quality, then by order; each matches a locale
    exactly (de-DE → de_DE) or by its language (de, de-AT → de_DE); q=0 excludes.
    """
    return _pick_locale(
        tuple(request.app[SETTINGS].locales), request.headers.get("Accept-Language", "")
    )


@functools.lru_cache(maxsize=256)
def _pick_locale(locales: tuple[str, ...], header: str) -> str:
    # Cached: shops send the same few headers over and over, and every answer needs it.
    for tag in _ranked_languages(header):
        language = tag.split("_")[0]
        exact = [loc for loc in locales if loc.lower() == tag]
        same_language = [loc for loc in locales if loc.split("_")[0].lower() == language]
        if exact or same_language:
            return (exact or same_language)[0]
    return locales[0]


def _ranked_languages(header: str) -> list[str]:
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.partition(";")
        tag = tag.strip().replace("-", "_").lower()
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag and tag != "*" and quality > 0:
            ranked.append((-quality, index, tag))
    return [tag for _, _, tag in sorted(ranked)]


@web.middleware
async def outermost(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, Glue error documents for every failure, metrics and the access log."""
    sent = request.headers.get("X-Request-Id", "")
    request_id = sent if ID_PATTERN.fullmatch(sent) else uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    token = request_id_var.set(request_id)
    started = time.perf_counter()
    metrics = request.app.get(METRICS)
    if metrics is not None:
        metrics.in_flight.inc()
    try:
        try:
            response = await handler(request)
        except GlueError as exc:
            response = error_response(exc.errors, exc.headers)
        except DomainError as exc:
            glue = from_domain(exc)
            response = error_response(glue.errors, glue.headers)
        except web.HTTPException as exc:
            if exc.status in (404, 405):
                response = error_response([NOT_FOUND])
            elif exc.status == 413:
                response = error_response([PAYLOAD_TOO_LARGE])
            elif exc.status < 400:
                raise
            else:
                response = error_response([error(None, exc.status, exc.reason)])
        except _UNSTORABLE:
            # A NUL character (or one the encoding lacks) in a value the client sent:
            # PostgreSQL text and jsonb cannot hold it, whichever route passed it on.
            response = error_response([UNSTORABLE_TEXT])
        except (*_DB_DOWN, OSError) as exc:
            log.warning("database unavailable: %s", exc)
            response = error_response([SERVICE_UNAVAILABLE], {"Retry-After": "1"})
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            response = error_response([INTERNAL])
        if not response.prepared:
            response.headers["X-Request-Id"] = request_id
            response.headers["Content-Language"] = locale_of(request)
            for name, value in _SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
        elapsed = time.perf_counter() - started
        route = request.match_info.route.resource
        template = route.canonical if route is not None else "unmatched"
        if metrics is not None:
            metrics.observe_request(request.method, template, response.status, elapsed)
        if access.isEnabledFor(logging.INFO):
            access.info(
                "%s %s %s",
                request.method,
                request.path,
                response.status,
                extra={"fields": {"status": response.status, "ms": round(elapsed * 1000, 2)}},
            )
        return response
    finally:
        if metrics is not None:
            metrics.in_flight.dec()
        request_id_var.reset(token)


@web.middleware
async def checks(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Body shape → missing id → access token, in the order the SPEC fixes."""
    if request.match_info.http_exception is not None:
        raise request.match_info.http_exception
    spec = endpoint_of(request)
    if spec.body_type is not None:
        if request.content_type not in BODY_TYPES:
            raise GlueError(UNSUPPORTED_MEDIA_TYPE)
        request[BODY] = parse_body(await read_body(request), spec.body_type)
    if spec.missing_id is not None:
        raise GlueError(spec.missing_id)
    principal = await _authenticate(request) if spec.bearer else None
    if spec.auth in ("customer", "client", "any") and principal is None:
        raise GlueError(MISSING_ACCESS_TOKEN)
    if principal is not None:
        if spec.auth == "customer" and principal.kind != "customer":
            raise GlueError(UNAUTHORIZED)
        if spec.auth == "client" and principal.kind != "client":
            raise GlueError(UNAUTHORIZED)
        if (
            spec.scope is not None
            and spec.auth in ("client", "any")
            and (principal.kind == "client" and spec.scope not in principal.scopes)
        ):
            raise GlueError(UNAUTHORIZED)
    request[PRINCIPAL] = principal
    return await handler(request)


async def read_body(request: web.Request) -> bytes:
    """The whole body, within the read timeout (408), the size limit (413) and decodable
    by its Content-Encoding (400); each failure is a GlueError."""
    declared = request.content_length
    if declared is not None and declared > request.client_max_size:
        # Refused at once rather than after reading (or waiting for) that much.
        raise GlueError(PAYLOAD_TOO_LARGE, headers={"Connection": "close"})
    try:
        if request.content.is_eof():
            return await request.read()  # it all came with the headers: nothing to wait for
        async with asyncio.timeout(request.app[SETTINGS].body_read_seconds):
            return await request.read()
    except TimeoutError:
        raise GlueError(REQUEST_TIMEOUT, headers={"Connection": "close"}) from None
    except web.RequestPayloadError:
        # The body does not decode by its Content-Encoding (e.g. a broken gzip stream).
        raise GlueError(POST_DATA_INVALID) from None
    except web.HTTPRequestEntityTooLarge:
        raise GlueError(PAYLOAD_TOO_LARGE) from None


async def _authenticate(request: web.Request) -> Principal | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise GlueError(INVALID_ACCESS_TOKEN, headers=BEARER)
    # The cache spares re-verifying a known token and re-reading its generation
    # (service/auth/tokencache.py says when that is safe).
    cache = request.app[TOKEN_CACHE]
    try:
        principal = cache.verify(token.strip())
    except InvalidToken:
        raise GlueError(INVALID_ACCESS_TOKEN, headers=BEARER) from None
    if principal.kind == "customer":
        # Anonymised customers and tokens older than the last password change die here.
        generation = await cache.generation(request.app[POOL], principal.subject)
        if generation is None or generation != principal.generation:
            raise GlueError(INVALID_ACCESS_TOKEN, headers=BEARER)
    return principal


def principal_of(request: web.Request) -> Principal:
    """The authenticated principal of a protected route."""
    principal: Principal | None = request.get(PRINCIPAL)
    if principal is None:  # pragma: no cover - the checks middleware guarantees it
        raise GlueError(MISSING_ACCESS_TOKEN)
    return principal
