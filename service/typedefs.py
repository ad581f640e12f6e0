"""Every piece of shared application state, as typed `web.AppKey`s."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import asyncpg
from aiohttp import web

if TYPE_CHECKING:
    from events.store import EventStore
    from events.subscribers import SubscriberRuntime
    from service.auth.blocker import LoginBlocker
    from service.auth.onetime import OneTimeKeys
    from service.auth.passwords import PasswordHasher
    from service.auth.tokencache import TokenCache
    from service.auth.tokens import Principal, TokenService
    from service.background import Background
    from service.clock import Clock
    from service.commands import StateCache
    from service.config import Settings
    from service.jsonapi import Body
    from service.metrics import Metrics
    from service.products import ProductLookup

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
POOL: web.AppKey[asyncpg.Pool] = web.AppKey("pool")
STORE: web.AppKey[EventStore] = web.AppKey("store")
HASHER: web.AppKey[PasswordHasher] = web.AppKey("hasher")
TOKENS: web.AppKey[TokenService] = web.AppKey("tokens")
TOKEN_CACHE: web.AppKey[TokenCache] = web.AppKey("token_cache")
SUBSCRIBERS: web.AppKey[SubscriberRuntime] = web.AppKey("subscribers")
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
BLOCKER: web.AppKey[LoginBlocker] = web.AppKey("blocker")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
ONETIME: web.AppKey[OneTimeKeys] = web.AppKey("onetime")
STATES: web.AppKey[StateCache] = web.AppKey("states")
BACKGROUND: web.AppKey[Background] = web.AppKey("background")
PRODUCTS: web.AppKey[ProductLookup] = web.AppKey("products")
# Set at shutdown: open event-feed streams (SSE) end at once instead of holding it up.
FEED_CLOSING: web.AppKey[asyncio.Event] = web.AppKey("feed_closing")

# Per-request state set by the middlewares.
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id")
BODY: web.RequestKey[Body] = web.RequestKey("body")
PRINCIPAL: web.RequestKey[Principal | None] = web.RequestKey("principal")
