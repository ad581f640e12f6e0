"""Operator endpoints: the OpenAPI document and Prometheus metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from service import openapi
from service.endpoint import endpoint
from service.metrics import MULTIPROC_ENV, Metrics, observe_database
from service.typedefs import METRICS, POOL, SUBSCRIBERS

log = logging.getLogger(__name__)
# With several workers each one refreshes its own process-local gauges this often,
# since a scrape only reaches one of them.
_REFRESH_SECONDS = 2.0


@endpoint(
    summary="This OpenAPI 3.1 document.",
    content_type="application/json",
)
async def openapi_json(request: web.Request) -> web.Response:
    """The document, generated from the route table."""
    return web.json_response(openapi.document(request.app))


@endpoint(
    summary="Prometheus metrics (text exposition format).",
    content_type="text/plain",
)
async def metrics(request: web.Request) -> web.Response:
    """Request, event, subscriber, mail, login and database figures."""
    app = request.app
    m = app[METRICS]
    _observe_process(app, m)
    try:
        subs = [(s.name, s.types) for s in app[SUBSCRIBERS].subscribers]
        async with asyncio.timeout(2.0):
            await observe_database(m, app[POOL], subs)
    except Exception as exc:
        # Metrics must answer while the database is down: that is when they matter.
        m.scrape_errors.inc()
        log.warning("metrics: database figures unavailable: %s", exc)
    body = m.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _observe_process(app: web.Application, m: Metrics) -> None:
    pool = app.get(POOL)
    if pool is not None:
        m.observe_pool(pool)
    runtime = app.get(SUBSCRIBERS)
    if runtime is not None:
        for name, status in runtime.status.items():
            m.subscriber_leader.labels(name).set(1 if status.leader else 0)


async def _refresher(app: web.Application) -> AsyncIterator[None]:
    task = None
    if os.environ.get(MULTIPROC_ENV):

        async def refresh() -> None:
            while True:
                _observe_process(app, app[METRICS])
                await asyncio.sleep(_REFRESH_SECONDS)

        task = asyncio.get_running_loop().create_task(refresh())
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def setup(app: web.Application) -> None:
    """Register /openapi.json and /metrics."""
    app.router.add_get("/openapi.json", openapi_json, name="openapi", allow_head=False)
    app.router.add_get("/metrics", metrics, name="metrics", allow_head=False)
    app.cleanup_ctx.append(_refresher)
