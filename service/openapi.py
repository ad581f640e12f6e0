"""The OpenAPI 3.1 document, generated from the live route table so it cannot drift.

Every route's handler carries an `Endpoint` (service/endpoint.py): auth, body
type, attribute schema, success status. This module turns those facts, the
marshmallow schemas (service/jsonschema.py) and the JSON:API error document
into one OpenAPI description.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from service.endpoint import Endpoint
from service.jsonapi import BODY_TYPES
from service.jsonschema import attributes_schema

OPENAPI_VERSION = "3.1.0"
_PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")
_SUCCESS = {"POST": 201, "DELETE": 204}
_REASONS = {
    200: "OK",
    201: "Created",
    204: "No content",
    400: "Malformed request (post data, type, pagination, business rule)",
    401: "Invalid, expired or revoked access token (001), or failed authentication",
    403: "Missing access token (002) or not allowed (802)",
    404: "Not found",
    409: "Concurrent modification; retry",
    413: "Request body over 1 MiB",
    415: "Unsupported request content type",
    422: "Attribute validation (901) or a business rule",
    429: "Too many attempts",
    503: "Database or a dependency unavailable; retry later",
}

ERROR_DOCUMENT: dict[str, Any] = {
    "type": "object",
    "required": ["errors"],
    "properties": {
        "errors": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["status", "detail"],
                "properties": {
                    "code": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                },
            },
        }
    },
}

_RESOURCE: dict[str, Any] = {
    "type": "object",
    "required": ["type", "id", "attributes"],
    "properties": {
        "type": {"type": "string"},
        "id": {"type": ["string", "null"]},
        "attributes": {"type": "object"},
        "relationships": {"type": "object"},
        "links": {"type": "object", "properties": {"self": {"type": "string"}}},
    },
}

DATA_DOCUMENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "data": {
            "oneOf": [
                {"$ref": "#/components/schemas/Resource"},
                {"type": "array", "items": {"$ref": "#/components/schemas/Resource"}},
                {"type": "null"},
            ]
        },
        "included": {"type": "array", "items": {"$ref": "#/components/schemas/Resource"}},
        "links": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def document(app: web.Application, *, title: str = "glue-customers") -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route the application serves."""
    components: dict[str, Any] = {
        "Error": ERROR_DOCUMENT,
        "Resource": _RESOURCE,
        "Document": DATA_DOCUMENT,
    }
    paths: dict[str, dict[str, Any]] = {}
    for method, path, handler in routes(app):
        spec: Endpoint = getattr(handler, "endpoint", None) or Endpoint()
        operation = _operation(method, path, handler, spec, components)
        paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": title,
            "version": "1",
            "description": "Spryker Glue Storefront Customer API, event-sourced. "
            "Errors are JSON:API error documents; the HTTP status is the last error's.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "Access token from /access-tokens or /token (RS256; "
                    "keys at /.well-known/jwks.json). Client tokens carry scopes.",
                }
            },
        },
    }


def routes(app: web.Application) -> Iterator[tuple[str, str, Any]]:
    """(method, OpenAPI path, handler) of every served route; HEAD twins left out."""
    for route in app.router.routes():
        resource = route.resource
        if resource is None or route.method in ("HEAD", "*", "OPTIONS"):
            continue
        yield route.method, _PARAM.sub(r"{\1}", resource.canonical), route.handler


def _operation(
    method: str, path: str, handler: Any, spec: Endpoint, components: dict[str, Any]
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": _operation_id(method, path),
        "summary": spec.summary or (handler.__doc__ or "").strip().split("\n")[0],
        "tags": [path.strip("/").split("/")[0] or "root"],
        "security": _security(spec),
    }
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAM.findall(path)
    ]
    parameters += [dict(q) for q in spec.query]
    if parameters:
        op["parameters"] = parameters
    body = _request_body(method, spec, components)
    if body is not None:
        op["requestBody"] = body
    op["responses"] = _responses(method, spec)
    return op


def _operation_id(method: str, path: str) -> str:
    words = re.sub(r"[^A-Za-z0-9]+", "-", _PARAM.sub(r"by-\1", path)).strip("-")
    return f"{method.lower()}-{words or 'root'}"


def _security(spec: Endpoint) -> list[dict[str, list[str]]]:
    scopes = [spec.scope] if spec.scope else []
    if spec.auth == "none":
        return []
    if spec.auth == "optional":
        return [{}, {"bearerAuth": []}]
    return [{"bearerAuth": scopes}]


def _request_body(method: str, spec: Endpoint, components: dict[str, Any]) -> dict[str, Any] | None:
    if spec.request_body is not None:
        return dict(spec.request_body)
    if spec.body_type is None:
        return None
    attributes: dict[str, Any] = {"type": "object"}
    if spec.schema is not None:
        partial = method == "PATCH"
        name = spec.schema.__name__.removesuffix("Schema") + ("Patch" if partial else "")
        components[f"{name}Attributes"] = attributes_schema(spec.schema, partial=partial)
        attributes = {"$ref": f"#/components/schemas/{name}Attributes"}
    schema = {
        "type": "object",
        "required": ["data"],
        "properties": {
            "data": {
                "type": "object",
                "required": ["type", "attributes"],
                "properties": {
                    "type": {"const": spec.body_type},
                    "id": {"type": ["string", "null"]},
                    "attributes": attributes,
                },
            }
        },
    }
    return {"required": True, "content": {t: {"schema": schema} for t in BODY_TYPES}}


def _error(status: int) -> dict[str, Any]:
    return {
        "description": _REASONS.get(status, "Error"),
        "content": {"application/vnd.api+json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _responses(method: str, spec: Endpoint) -> dict[str, Any]:
    status = spec.status or _SUCCESS.get(method, 200)
    success: dict[str, Any] = {"description": _REASONS.get(status, "Success")}
    if status != 204:
        schema = (
            {"$ref": "#/components/schemas/Document"}
            if spec.content_type == "application/vnd.api+json"
            else {}
        )
        success["content"] = {spec.content_type: {"schema": schema}}
    out: dict[str, Any] = {str(status): success}
    errors = {404, 503}  # unknown path or id; database down
    if spec.body_type is not None or spec.request_body is not None:
        errors |= {400, 413, 415, 422}
    if spec.missing_id is not None:
        errors |= {spec.missing_id.status}
    if spec.auth != "none":
        errors |= {401}
    if spec.auth in ("customer", "client", "any"):
        errors |= {403}
    if method in ("PATCH", "DELETE", "POST"):
        errors |= {409}
    for code in sorted(errors):
        out[str(code)] = _error(code)
    # Any other failure (a business rule, 429, 500) is still an error document.
    out["default"] = _error(0) | {"description": "Error document"}
    for key, value in (spec.responses or {}).items():
        out[str(key)] = dict(value)
    return out
