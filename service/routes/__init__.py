"""HTTP routes, one module per resource; every module here with a `setup(app)` is registered."""

from __future__ import annotations

import importlib
import pkgutil

from aiohttp import web


def setup_routes(app: web.Application) -> None:
    """Register the routes of every module in this package (sorted, so order is stable)."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        setup = getattr(module, "setup", None)
        if callable(setup):
            setup(app)
