"""/event-feed: every event after a cursor, for internal services (SPEC §9).

The same URL pages (JSON:API, `links.next` to poll) or, with `Accept:
text/event-stream`, streams live as Server-Sent Events. Both read through the
store's gap-free `read_all`, so a consumer that resumes from the last id it saw
(`page[after]` or `Last-Event-ID`) never skips nor repeats an event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlencode

from aiohttp import web

from events.types import parse_cursor
from service.endpoint import endpoint
from service.errors import PAGINATION_INVALID, UNSTORABLE_TEXT, GlueError
from service.event_view import event_item
from service.jsonapi import base_url, dumps, page_number, respond
from service.middlewares import principal_of
from service.typedefs import CLOCK, FEED_CLOSING, REQUEST_ID, SETTINGS, STORE

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

_QUERY = (
    {"name": "page[after]", "in": "query", "schema": {"type": "string"}},
    {
        "name": "page[limit]",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
    },
    {"name": "filter[type]", "in": "query", "schema": {"type": "string"}},
    {"name": "filter[stream]", "in": "query", "schema": {"type": "string"}},
)


def _filter(request: web.Request, name: str) -> str:
    """A filter's value ("" when absent); 400 when it holds NUL."""
    value = request.query.get(name, "")
    if "\x00" in value:
        # PostgreSQL text cannot hold it: the answer a NUL anywhere else in a request gets.
        raise GlueError(UNSTORABLE_TEXT)
    return value


@dataclass(frozen=True)
class FeedQuery:
    """Where to start and what to include."""

    after: tuple[int, int] | None
    limit: int
    types: list[str] | None
    stream: str | None

    @classmethod
    def from_request(cls, request: web.Request, after: str | None = None) -> FeedQuery:
        """Read page[after] (or the given cursor), page[limit] and the filters; 400 on nonsense.

        Everything is checked here: once a stream has begun, an error can no longer be answered."""
        raw_after = after if after is not None else request.query.get("page[after]")
        try:
            cursor = parse_cursor(raw_after) if raw_after else None
        except ValueError:
            raise GlueError(PAGINATION_INVALID) from None
        limit = page_number(request, "page[limit]", DEFAULT_LIMIT, 1, MAX_LIMIT)
        types = [t.strip() for t in _filter(request, "filter[type]").split(",") if t.strip()]
        return cls(cursor, limit, types or None, _filter(request, "filter[stream]") or None)

    def next_link(self, request: web.Request, after: str | None) -> str:
        """This query continued after `after` (or from where it started, when nothing came)."""
        query = [(k, v) for k, v in request.query.items() if k != "page[after]"]
        if after is not None:
            query.append(("page[after]", after))
        return f"{base_url(request)}{request.path}?{urlencode(query)}"


@endpoint(
    auth="client",
    scope="events:read",
    summary="Events after a cursor, oldest first (Server-Sent Events with Accept: text/event-stream).",
    query=_QUERY,
)
async def event_feed(request: web.Request) -> web.StreamResponse:
    """One page of the feed, or the live stream."""
    if "text/event-stream" in request.headers.get("Accept", ""):
        return await _stream(request)
    query = FeedQuery.from_request(request)
    events = await request.app[STORE].read_all(
        after=query.after, limit=query.limit, types=query.types, stream_id=query.stream
    )
    last = events[-1].cursor if events else request.query.get("page[after]")
    return respond(
        {
            "data": [event_item(e) for e in events],
            "links": {
                "self": base_url(request) + str(request.rel_url),
                "next": query.next_link(request, last),
            },
        }
    )


async def _stream(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events from the cursor on: `id:` is the cursor, `event:` the event type."""
    query = FeedQuery.from_request(request, after=request.headers.get("Last-Event-ID") or None)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",  # proxies must not hold events back
            "X-Request-Id": request[REQUEST_ID],
        }
    )
    await response.prepare(request)
    try:
        await response.write(b"retry: 2000\n\n")
        async for chunk in _frames(request, query):
            await response.write(chunk)  # waits while the client's socket is full
    except ConnectionError:
        pass  # the client went away: seen as a failed write, at the latest at a heartbeat
    except Exception:
        # Once the stream has begun, no error document can follow: an answer written
        # now would land inside the stream's body. End it; the client resumes with
        # Last-Event-ID.
        log.exception("event stream failed after it began")
    return response


async def _frames(request: web.Request, query: FeedQuery) -> AsyncIterator[bytes]:
    """Events as SSE frames, then heartbeats while idle; bounded batches, no buffering.
    Ends when the access token expires: the client reconnects with a fresh one."""
    app = request.app
    store = app[STORE]
    settings = app[SETTINGS]
    closing = app[FEED_CLOSING]
    clock = app[CLOCK]
    expires_at = principal_of(request).expires_at
    loop = asyncio.get_running_loop()
    woken = store.waker.waiter() if store.waker is not None else asyncio.Event()
    after = query.after
    beat_at = loop.time() + settings.feed_heartbeat_seconds
    try:
        while not closing.is_set():
            valid_for = expires_at - clock.now().timestamp()
            if valid_for <= 0:
                yield b": access token expired\n\n"
                return
            woken.clear()  # cleared before reading: a commit after the read wakes us again
            events = await store.read_all(
                after=after, limit=query.limit, types=query.types, stream_id=query.stream
            )
            for event in events:
                yield (
                    f"id: {event.cursor}\nevent: {event.event_type}\n"
                    f"data: {dumps(event_item(event))}\n\n"
                ).encode()
                after = (event.transaction_id, event.position)
            if events:
                beat_at = loop.time() + settings.feed_heartbeat_seconds
                if len(events) == query.limit:
                    continue  # more is waiting
            wait = min(settings.subscriber_poll_seconds, beat_at - loop.time(), valid_for)
            await _first_of(woken, closing, timeout=max(wait, 0.0))
            if loop.time() >= beat_at:
                yield b": heartbeat\n\n"
                beat_at = loop.time() + settings.feed_heartbeat_seconds
    finally:
        if store.waker is not None:
            store.waker.forget(woken)


async def _first_of(*events: asyncio.Event, timeout: float) -> None:
    """Return when any of the events is set, or after `timeout` seconds."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


async def _close_streams(app: web.Application) -> None:
    app[FEED_CLOSING].set()


def setup(app: web.Application) -> None:
    """Register /event-feed."""
    app.router.add_get("/event-feed", event_feed, name="event-feed", allow_head=False)
    app[FEED_CLOSING] = asyncio.Event()
    app.on_shutdown.append(_close_streams)
