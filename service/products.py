"""Does a SKU exist? Asked of the product service at PRODUCT_LOOKUP_URL, when one is set."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from service.domain.errors import ProductLookupUnavailable, ProductNotFound
from service.typedefs import PRODUCTS, SETTINGS

# Short on purpose: a subscriber waits for this answer, and a slow product service
# should cost them a quick 503, not a hung request.
TIMEOUT = aiohttp.ClientTimeout(total=2.0, connect=1.0)


class ProductLookup:
    """Checks SKUs against a `{sku}` URL template: 2xx = exists, 404 = does not."""

    def __init__(self, template: str | None, session: aiohttp.ClientSession | None) -> None:
        self.template = template
        self._session = session

    @property
    def enabled(self) -> bool:
        """Whether a lookup is configured (without one, every well-formed SKU is accepted)."""
        return self.template is not None and self._session is not None

    def url_for(self, sku: str) -> str:
        """The lookup URL of a SKU (the schema already limited SKUs to URL-safe characters)."""
        assert self.template is not None
        return self.template.replace("{sku}", sku)

    async def require(self, sku: str) -> None:
        """Return when the product exists; raise ProductNotFound or ProductLookupUnavailable."""
        if not self.enabled:
            return
        assert self._session is not None
        try:
            async with self._session.get(self.url_for(sku)) as response:
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProductLookupUnavailable(str(exc)) from exc
        if status == 404:
            raise ProductNotFound(sku)
        if not 200 <= status < 300:
            # A 5xx (or anything unexpected) says nothing about the SKU: answer 503.
            raise ProductLookupUnavailable(f"product lookup answered {status}")


async def lookup_context(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: one client session for the app's lifetime, only when a lookup is set."""
    template = app[SETTINGS].product_lookup_url
    session = aiohttp.ClientSession(timeout=TIMEOUT) if template else None
    app[PRODUCTS] = ProductLookup(template, session)
    try:
        yield
    finally:
        if session is not None:
            await session.close()
