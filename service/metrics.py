"""Prometheus metrics, one registry per application (no process globals).

With several worker processes on one port (service/workers.py) a scrape lands on
any one of them, so the supervisor sets PROMETHEUS_MULTIPROC_DIR and every
worker's counters and histograms are summed at scrape time from there.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

Inline = Callable[[asyncpg.Connection, Sequence[Any]], Awaitable[None]]


class Metrics:
    """The service's counters, histograms and gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # labels() validates and locks on every call; a metric's children never change.
        self._children: dict[tuple[object, ...], Any] = {}
        self.requests = Histogram(
            "glue_http_request_duration_seconds",
            "HTTP request latency by route and status.",
            ["method", "route", "status"],
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.in_flight = Gauge(
            "glue_http_requests_in_flight",
            "Requests being handled right now.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.events_appended = Counter(
            "glue_events_appended_total", "Events appended, by type.", ["type"], registry=r
        )
        self.mail_sent = Counter(
            "glue_mail_delivered_total", "Mails delivered, by kind.", ["kind"], registry=r
        )
        self.mail_failures = Counter(
            "glue_mail_failures_total", "Failed mail delivery attempts.", registry=r
        )
        self.mail_undeliverable = Counter(
            "glue_mail_undeliverable_total",
            "Mails given up after a permanent refusal, by kind.",
            ["kind"],
            registry=r,
        )
        self.login_blocks = Counter(
            "glue_login_blocked_total", "Logins refused by the blocker.", registry=r
        )
        self.subscriber_lag_events = Gauge(
            "glue_subscriber_lag_events",
            "Committed events a subscriber has not handled yet.",
            ["subscriber"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.subscriber_lag_seconds = Gauge(
            "glue_subscriber_lag_seconds",
            "Age of the oldest committed event a subscriber has not handled yet.",
            ["subscriber"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.subscriber_leader = Gauge(
            "glue_subscriber_leader",
            "1 in the process that runs the subscriber (holds its advisory lock).",
            ["subscriber"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.pool_size = Gauge(
            "glue_db_pool_size", "Open pool connections.", registry=r, multiprocess_mode="livesum"
        )
        self.pool_idle = Gauge(
            "glue_db_pool_idle", "Idle pool connections.", registry=r, multiprocess_mode="livesum"
        )
        self.pool_max = Gauge(
            "glue_db_pool_max", "Pool size limit.", registry=r, multiprocess_mode="livesum"
        )
        self.oldest_writer_seconds = Gauge(
            "glue_db_oldest_writer_seconds",
            "Age of the oldest running transaction holding a transaction id; "
            "feed readers and subscribers cannot see past it.",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.xmin_age = Gauge(
            "glue_db_xmin_age_transactions",
            "Transactions begun since the oldest running one's snapshot (vacuum horizon).",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.scrape_errors = Counter(
            "glue_metrics_scrape_errors_total",
            "Scrapes whose database-derived gauges could not be read.",
            registry=r,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one handled request."""
        self._child(self.requests, method, route, str(status)).observe(seconds)

    def count_appends(self, inline: Inline) -> Inline:
        """Wrap the inline projection, which sees every append, to count events by type.

        Counted once the projection succeeded inside the append transaction; the rare
        transaction that still rolls back after that is counted too.
        """

        async def counted(conn: asyncpg.Connection, events: Sequence[Any]) -> None:
            await inline(conn, events)
            self.count_events(events)

        return counted

    def count_events(self, events: Sequence[Any]) -> None:
        """Count appended events by type."""
        for event in events:
            self._child(self.events_appended, event.event_type).inc()

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe_pool(self, pool: asyncpg.Pool) -> None:
        """This process's connection pool usage."""
        self.pool_size.set(pool.get_size())
        self.pool_idle.set(pool.get_idle_size())
        self.pool_max.set(pool.get_max_size())

    def render(self) -> bytes:
        """The text exposition format (every worker's figures, with several workers)."""
        path = os.environ.get(MULTIPROC_ENV)
        if path:
            merged = CollectorRegistry()
            MultiProcessCollector(merged, path=path)
            return generate_latest(merged)
        return generate_latest(self.registry)


_LAG = """
SELECT count(*) AS events, extract(epoch FROM now() - min(pending.recorded_at)) AS seconds
FROM (
    SELECT e.recorded_at
    FROM events e, subscriber_checkpoints c
    WHERE c.name = $1
      AND (e.transaction_id, e.position) > (c.transaction_id, c.position)
      AND e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
      AND ($2::text[] IS NULL OR e.event_type = ANY($2::text[]))
    LIMIT 1000000
) pending
"""

# Only a transaction that holds a transaction id fences the feed (read-only ones
# never get one); the scraping session itself is left out.
_OLDEST = """
SELECT coalesce(extract(epoch FROM now() - min(xact_start) FILTER (WHERE backend_xid IS NOT NULL)),
                0) AS writer_seconds,
       coalesce(max(greatest(age(backend_xid), age(backend_xmin))), 0) AS xmin_age
FROM pg_stat_activity
WHERE pid <> pg_backend_pid()
"""


async def observe_database(
    metrics: Metrics,
    conn: asyncpg.Connection | asyncpg.Pool,
    subscribers: Sequence[tuple[str, Sequence[str] | None]],
) -> None:
    """Set the gauges that come from the database: subscriber lag and the xmin horizon."""
    for name, types in subscribers:
        row = await conn.fetchrow(_LAG, name, list(types) if types else None)
        metrics.subscriber_lag_events.labels(name).set(row["events"])
        metrics.subscriber_lag_seconds.labels(name).set(float(row["seconds"] or 0.0))
    row = await conn.fetchrow(_OLDEST)
    metrics.oldest_writer_seconds.set(float(row["writer_seconds"]))
    metrics.xmin_age.set(row["xmin_age"])
