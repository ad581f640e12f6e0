"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from aiohttp import web

from service.db import SCHEMA_VERSION, schema_version
from service.endpoint import endpoint
from service.jsonapi import respond
from service.typedefs import POOL


@endpoint(summary="The process is alive.")
async def live(request: web.Request) -> web.Response:
    """Always 200 while the process serves."""
    return respond({"status": "ok"})


@endpoint(summary="The database is reachable and the schema current.")
async def ready(request: web.Request) -> web.Response:
    """200 when the database answers and holds the expected schema version, else 503."""
    try:
        version = await asyncio.wait_for(schema_version(request.app[POOL]), timeout=2.0)
    except Exception as exc:
        return respond({"status": "unavailable", "reason": type(exc).__name__}, status=503)
    if version != SCHEMA_VERSION:
        return respond(
            {
                "status": "unavailable",
                "reason": f"schema version {version}, expected {SCHEMA_VERSION}",
            },
            status=503,
        )
    return respond({"status": "ok", "schemaVersion": version})


def setup(app: web.Application) -> None:
    """Register the health routes."""
    app.router.add_get("/health/live", live, name="health-live")
    app.router.add_get("/health/ready", ready, name="health-ready")
