"""Mirror of projections/subscriptions.py: availability subscriptions."""

from __future__ import annotations

from events.types import RecordedEvent
from projections.mirrors.base import Mirror, Tables, delete_where, insert, reference_of

mirror = Mirror(
    name="subscriptions",
    columns={
        "availability_subscriptions": (
            "subscription_key",
            "customer_reference",
            "email",
            "email_lower",
            "sku",
            "locale_name",
            "created_at",
        )
    },
    fingerprint="4f5c32a62eca7e3d",
)


@mirror.on("AvailabilityNotificationSubscribed")
def _subscribed(t: Tables, e: RecordedEvent) -> None:
    p = e.payload
    insert(
        t["availability_subscriptions"],
        p["subscription_key"],
        {
            "subscription_key": p["subscription_key"],
            "customer_reference": p.get("customer_reference"),
            "email": p["email"],
            "email_lower": p["email"].lower(),
            "sku": p["sku"],
            "locale_name": p["locale_name"],
            "created_at": e.recorded_at,
        },
    )


@mirror.on("AvailabilityNotificationUnsubscribed")
def _unsubscribed(t: Tables, e: RecordedEvent) -> None:
    t["availability_subscriptions"].pop(e.payload["subscription_key"], None)


@mirror.on("CustomerAnonymized")
def _subscriptions_anonymized(t: Tables, e: RecordedEvent) -> None:
    delete_where(t["availability_subscriptions"], "customer_reference", reference_of(e))
