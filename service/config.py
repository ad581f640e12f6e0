"""Settings read once at start-up from the environment into an immutable object."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path


def _cores() -> int:
    return os.cpu_count() or 1


@dataclass(frozen=True)
class OAuthClient:
    """An internal client allowed the client-credentials grant."""

    id: str
    secret: str
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment (SPEC §10)."""

    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    data_dir: Path = Path("var")
    public_base_url: str | None = None
    storefront_url: str = "http://localhost:3000"
    store: str = "DE"
    smtp_host: str | None = None
    smtp_port: int = 1025
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    mail_from: str = "no-reply@glue-customers.local"
    master_key: str | None = None
    jwt_private_key_file: Path | None = None
    access_token_ttl: int = 28800
    refresh_token_ttl: int = 2592000
    oauth_clients: tuple[OAuthClient, ...] = ()
    product_lookup_url: str | None = None
    log_level: str = "INFO"
    locales: tuple[str, ...] = ("en_US", "de_DE")
    # OWASP's argon2id floor: 19 MiB, 2 passes, 1 lane. Tests lower it for speed.
    argon2_memory_kib: int = 19456
    argon2_time_cost: int = 2
    hash_workers: int = field(default_factory=_cores)
    db_pool_min: int = 2
    db_pool_max: int = 20
    subscriber_poll_seconds: float = 2.0
    # Under a stream of registrations the mailer passes at most this often, sending
    # what arrived meanwhile as one batch; a lone mail leaves at once.
    mail_batch_seconds: float = 0.2
    leader_retry_seconds: float = 2.0
    # A client must send a whole request body within this (a trickled body holds a
    # connection and a handler: aiohttp itself has no read timeout).
    body_read_seconds: float = 15.0
    # An idle event-feed stream (SSE) sends a comment this often, so proxies and
    # clients can tell a quiet feed from a dead connection.
    feed_heartbeat_seconds: float = 15.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Build settings from environment variables, falling back to the SPEC defaults."""
        e = dict(os.environ if env is None else env)

        def get(name: str) -> str | None:
            value = e.get(name)
            return value if value not in (None, "") else None

        def integer(name: str, default: int) -> int:
            value = get(name)
            return int(value) if value is not None else default

        clients = tuple(
            OAuthClient(id=str(c["id"]), secret=str(c["secret"]), scopes=tuple(c.get("scopes", [])))
            for c in json.loads(get("OAUTH_CLIENTS") or "[]")
        )
        key_file = get("JWT_PRIVATE_KEY_FILE")
        return cls(
            database_url=get("DATABASE_URL"),
            host=get("HOST") or cls.host,
            port=integer("PORT", cls.port),
            workers=integer("WORKERS", cls.workers),
            data_dir=Path(get("DATA_DIR") or "var"),
            public_base_url=(get("PUBLIC_BASE_URL") or "").rstrip("/") or None,
            storefront_url=(get("STOREFRONT_URL") or cls.storefront_url).rstrip("/"),
            store=get("STORE") or cls.store,
            smtp_host=get("SMTP_HOST"),
            smtp_port=integer("SMTP_PORT", cls.smtp_port),
            smtp_username=get("SMTP_USERNAME"),
            smtp_password=get("SMTP_PASSWORD"),
            smtp_starttls=(get("SMTP_STARTTLS") or "").lower() in ("1", "true", "yes"),
            mail_from=get("MAIL_FROM") or cls.mail_from,
            master_key=get("MASTER_KEY"),
            jwt_private_key_file=Path(key_file) if key_file else None,
            access_token_ttl=integer("ACCESS_TOKEN_TTL", cls.access_token_ttl),
            refresh_token_ttl=integer("REFRESH_TOKEN_TTL", cls.refresh_token_ttl),
            oauth_clients=clients,
            product_lookup_url=get("PRODUCT_LOOKUP_URL"),
            log_level=(get("LOG_LEVEL") or cls.log_level).upper(),
            argon2_memory_kib=integer("ARGON2_MEMORY_KIB", cls.argon2_memory_kib),
            argon2_time_cost=integer("ARGON2_TIME_COST", cls.argon2_time_cost),
            hash_workers=integer("HASH_WORKERS", _cores()),
            db_pool_max=integer("DB_POOL_MAX", cls.db_pool_max),
            mail_batch_seconds=float(get("MAIL_BATCH_SECONDS") or cls.mail_batch_seconds),
        )
