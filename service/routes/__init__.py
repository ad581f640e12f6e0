"""HTTP routes, one module per resource; `setup_routes` registers them all."""

from __future__ import annotations

from aiohttp import web

from service.routes import access_tokens, confirmation, customers, health


def setup_routes(app: web.Application) -> None:
    """Register every route of the service."""
    for module in (health, customers, confirmation, access_tokens):
        module.setup(app)
