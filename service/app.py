"""Application wiring: configuration, resources (cleanup_ctx), routes, middlewares."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from events.crypto import KeyRing
from events.customer import registry
from events.notify import Listener, Waker
from events.store import EventStore
from events.subscribers import RuntimeOptions, Subscriber, SubscriberRuntime
from projections import inline_projections
from service import db, keys
from service.auth import tokencache
from service.auth.blocker import LoginBlocker
from service.auth.housekeeping import sweep_periodically
from service.auth.onetime import OneTimeKeys
from service.auth.passwords import PasswordHasher
from service.auth.tokencache import TokenCache
from service.auth.tokens import TokenService
from service.background import Background
from service.clock import Clock
from service.commands import StateCache
from service.config import Settings
from service.inline import Inline
from service.mail.mailer import Mailer, SmtpTarget
from service.metrics import Metrics
from service.middlewares import checks, outermost
from service.products import lookup_context
from service.routes import setup_routes
from service.typedefs import (
    BACKGROUND,
    BLOCKER,
    CLOCK,
    HASHER,
    METRICS,
    ONETIME,
    POOL,
    SETTINGS,
    STATES,
    STORE,
    SUBSCRIBERS,
    TOKEN_CACHE,
    TOKENS,
)

MAX_BODY = 1024 * 1024


@dataclass
class AppOptions:
    """What tests (and the CLI) may set beyond the environment."""

    dsn: str
    clock: Clock = field(default_factory=Clock)
    smtp: SmtpTarget | None = None
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)
    apply_schema: bool = True
    run_subscribers: bool = True
    extra_subscribers: list[Subscriber] = field(default_factory=list)
    # How often expired refresh tokens and old login failures are deleted.
    sweep_seconds: float = 600.0


def init_app(settings: Settings, options: AppOptions) -> web.Application:
    """Build the application; resources open and close with it."""
    app = web.Application(middlewares=[outermost, checks], client_max_size=MAX_BODY)
    app[SETTINGS] = settings
    app[CLOCK] = options.clock
    app[METRICS] = Metrics()
    master = keys.master_key(settings)
    app[ONETIME] = OneTimeKeys(master)
    app[STATES] = StateCache()
    app[BACKGROUND] = Background()
    app[TOKENS] = TokenService(
        keys.signing_key_pem(settings), settings.access_token_ttl, options.clock
    )
    app[TOKEN_CACHE] = TokenCache(app[TOKENS], options.clock)
    token_cache = tokencache.lifecycle(TOKEN_CACHE, lambda: db.connect(options.dsn))

    async def database(app: web.Application) -> AsyncIterator[None]:
        if options.apply_schema:
            conn = await db.connect(options.dsn)
            try:
                await db.apply_schema(conn)
            finally:
                await conn.close()
        pool = await db.create_pool(options.dsn, settings.db_pool_min, settings.db_pool_max)
        app[POOL] = pool
        waker = Waker(pool)
        inline = Inline(inline_projections, app[METRICS], app[TOKEN_CACHE])
        app[STORE] = EventStore(
            pool, registry, KeyRing(master), waker, inline.projection, composer=inline
        )
        listener = Listener(options.dsn, waker)
        await listener.start()
        yield
        await listener.stop()
        await waker.close()
        await pool.close()

    async def hasher(app: web.Application) -> AsyncIterator[None]:
        app[HASHER] = PasswordHasher(
            settings.argon2_memory_kib, settings.argon2_time_cost, settings.hash_workers
        )
        yield
        app[HASHER].close()

    async def subscribers(app: web.Application) -> AsyncIterator[None]:
        smtp = options.smtp or SmtpTarget(
            host=settings.smtp_host or "127.0.0.1",
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
        )
        mailer = Mailer(app[POOL], smtp, app[ONETIME], settings, app[METRICS])
        subs: list[Subscriber] = [mailer, *options.extra_subscribers]
        runtime = SubscriberRuntime(
            app[STORE],
            lambda: db.connect(options.dsn),
            app[STORE].waker,
            subs,
            options.runtime,  # type: ignore[arg-type]
        )
        app[SUBSCRIBERS] = runtime
        if options.run_subscribers:
            await runtime.start()
        yield
        await runtime.stop()
        await mailer.close()  # its SMTP connection stays open between mails

    async def background(app: web.Application) -> AsyncIterator[None]:
        yield
        await app[BACKGROUND].drain()

    async def credentials(app: web.Application) -> AsyncIterator[None]:
        app[BLOCKER] = LoginBlocker(app[POOL], options.clock)
        sweeper = asyncio.create_task(
            sweep_periodically(app[POOL], options.clock, app[BLOCKER], options.sweep_seconds),
            name="credentials-sweep",
        )
        yield
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper

    app.cleanup_ctx.extend(
        [database, token_cache, hasher, subscribers, background, credentials, lookup_context]
    )
    setup_routes(app)
    return app
