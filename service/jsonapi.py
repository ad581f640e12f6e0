"""JSON:API documents: reading request bodies, writing resources, collections and errors."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from events import jsoncodec
from events.types import is_decimal
from service.errors import (
    INVALID_TYPE,
    PAGINATION_INVALID,
    POST_DATA_INVALID,
    GlueError,
    GlueErrorObject,
)
from service.typedefs import SETTINGS

CONTENT_TYPE = "application/vnd.api+json"
BODY_TYPES = ("application/vnd.api+json", "application/json")

# PostgreSQL takes OFFSET as a bigint; a larger offset would fail in the driver.
MAX_OFFSET = 2**63 - 1


def dumps(doc: Any) -> str:
    """Compact JSON."""
    return jsoncodec.dumps(doc)


def respond(doc: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON:API response."""
    return web.Response(
        body=jsoncodec.dumps_bytes(doc),
        status=status,
        content_type=CONTENT_TYPE,
        charset="utf-8",
        headers=headers,
    )


def no_content() -> web.Response:
    """204 with an empty body."""
    return web.Response(status=204)


def error_response(
    errors: Sequence[GlueErrorObject], headers: Mapping[str, str] | None = None
) -> web.Response:
    """The error document; the HTTP status is the last error's."""
    return respond(
        {"errors": [e.to_json() for e in errors]}, status=errors[-1].status, headers=headers
    )


def timestamp(value: datetime | None) -> str | None:
    """`YYYY-MM-DD HH:MM:SS.ffffff` in UTC."""
    if value is None:
        return None
    # isoformat is several times faster than strftime; the slice drops "+00:00".
    return value.astimezone(UTC).isoformat(" ", "microseconds")[:26]


def day(value: date | str | None) -> str | None:
    """`YYYY-MM-DD`."""
    if value is None:
        return None
    return value if isinstance(value, str) else value.isoformat()


def base_url(request: web.Request) -> str:
    """PUBLIC_BASE_URL, or the request's own origin."""
    configured = request.app[SETTINGS].public_base_url
    return configured or f"{request.scheme}://{request.host}"


@dataclass(frozen=True)
class Body:
    """A validated request document's `data` member."""

    type: str
    id: str | None
    attributes: dict[str, Any]


def parse_body(raw: bytes, resource_type: str) -> Body:
    """Check the document's shape: `data` with `attributes` (an object) of the right type."""
    try:
        doc = jsoncodec.loads(raw)
    except ValueError:
        # Invalid UTF-8, NaN, lone surrogates and nesting deeper than 1024 included.
        raise GlueError(POST_DATA_INVALID) from None
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("attributes"), dict):
        raise GlueError(POST_DATA_INVALID)
    if data.get("type") != resource_type:
        raise GlueError(INVALID_TYPE)
    doc_id = data.get("id")
    return Body(
        type=resource_type,
        id=str(doc_id) if doc_id is not None else None,
        attributes=data["attributes"],
    )


def sparse(request: web.Request, resource_type: str, attributes: dict[str, Any]) -> dict[str, Any]:
    """Apply `fields[<type>]=a,b` when the client asked for a sparse fieldset."""
    wanted = request.query.get(f"fields[{resource_type}]")
    if wanted is None:
        return attributes
    names = {n.strip() for n in wanted.split(",") if n.strip()}
    return {k: v for k, v in attributes.items() if k in names}


@dataclass
class Resource:
    """One resource object, before it is rendered."""

    type: str
    id: str | None
    attributes: dict[str, Any]
    path: str  # relative self link, e.g. /customers/DE--1
    relationships: dict[str, list[Resource]] = field(default_factory=dict)

    def render(self, request: web.Request, base: str) -> dict[str, Any]:
        """The wire form with absolute links and sparse fieldsets applied."""
        out: dict[str, Any] = {
            "type": self.type,
            "id": self.id,
            "attributes": sparse(request, self.type, self.attributes),
            "links": {"self": base + self.path},
        }
        if self.relationships:
            out["relationships"] = {
                name: {"data": [{"type": r.type, "id": r.id} for r in items]}
                for name, items in self.relationships.items()
            }
        return out


def single(request: web.Request, resource: Resource, status: int = 200) -> web.Response:
    """A single-resource document (with `included` for its relationships)."""
    base = base_url(request)
    doc: dict[str, Any] = {"data": resource.render(request, base)}
    included = [r.render(request, base) for items in resource.relationships.values() for r in items]
    if included:
        doc["included"] = included
    return respond(doc, status=status)


def collection(
    request: web.Request,
    resources: Iterable[Resource],
    links: dict[str, str] | None = None,
) -> web.Response:
    """A collection document; `links.self` is the request's path and query."""
    base = base_url(request)
    items = list(resources)
    doc: dict[str, Any] = {
        "data": [r.render(request, base) for r in items],
        "links": {"self": base + str(request.rel_url)},
    }
    if links:
        doc["links"].update(links)
    included = [
        r.render(request, base) for res in items for rel in res.relationships.values() for r in rel
    ]
    if included:
        doc["included"] = included
    return respond(doc)


def includes(request: web.Request) -> set[str]:
    """The relationship names listed in `include`."""
    raw = request.query.get("include", "")
    return {part.strip() for part in raw.split(",") if part.strip()}


def page_number(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """Query parameter `name` as plain ASCII digits within low..high; 400 otherwise."""
    raw = request.query.get(name)
    if raw is None:
        return default
    if not is_decimal(raw):
        raise GlueError(PAGINATION_INVALID)
    try:
        value = int(raw)
    except ValueError:  # more digits than int() converts
        raise GlueError(PAGINATION_INVALID) from None
    if not low <= value <= high:
        raise GlueError(PAGINATION_INVALID)
    return value


@dataclass(frozen=True)
class Page:
    """`page[offset]` / `page[limit]` of a paginated collection."""

    offset: int
    limit: int

    @classmethod
    def from_request(
        cls, request: web.Request, default_limit: int = 10, max_limit: int = 500
    ) -> Page:
        """Read and check the page parameters (400 on nonsense)."""
        offset = page_number(request, "page[offset]", 0, 0, MAX_OFFSET)
        limit = page_number(request, "page[limit]", default_limit, 1, max_limit)
        return cls(offset=offset, limit=limit)

    def links(self, request: web.Request, total: int) -> dict[str, str]:
        """first/prev/next/last links for a collection of `total` items."""
        base = base_url(request) + request.path

        def link(offset: int) -> str:
            query = [(k, v) for k, v in request.query.items() if not k.startswith("page[")]
            query += [("page[offset]", str(offset)), ("page[limit]", str(self.limit))]
            return f"{base}?{urlencode(query)}"

        last = max(0, (total - 1) // self.limit * self.limit) if total else 0
        out = {"first": link(0), "last": link(last)}
        if self.offset > 0:
            out["prev"] = link(max(0, self.offset - self.limit))
        if self.offset + self.limit < total:
            out["next"] = link(self.offset + self.limit)
        return out
