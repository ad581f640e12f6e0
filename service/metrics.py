"""Prometheus metrics, one registry per application (no process globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """The service's counters, histograms and gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "glue_http_request_duration_seconds",
            "HTTP request latency by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.events_appended = Counter(
            "glue_events_appended_total",
            "Events appended, by type.",
            ["type"],
            registry=self.registry,
        )
        self.mail_sent = Counter(
            "glue_mail_delivered_total",
            "Mails delivered, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.mail_failures = Counter(
            "glue_mail_failures_total", "Failed mail delivery attempts.", registry=self.registry
        )
        self.login_blocks = Counter(
            "glue_login_blocked_total", "Logins refused by the blocker.", registry=self.registry
        )
        self.subscriber_lag_seconds = Gauge(
            "glue_subscriber_lag_seconds",
            "Age of the last event a subscriber handled.",
            ["subscriber"],
            registry=self.registry,
        )
        self.pool_size = Gauge(
            "glue_db_pool_size", "Open pool connections.", registry=self.registry
        )
        self.pool_idle = Gauge(
            "glue_db_pool_idle", "Idle pool connections.", registry=self.registry
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one handled request."""
        self.requests.labels(method, route, str(status)).observe(seconds)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
