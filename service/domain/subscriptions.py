"""Availability-subscription decisions, over the fold of the stream that holds them.

A subscription lives in its customer's stream (so shredding the customer covers
it) or, made without an account, in a stream of its own; the same fold serves both.
"""

from __future__ import annotations

from events.customer import AvailabilityNotificationSubscribed, AvailabilityNotificationUnsubscribed
from events.types import Event
from service.domain.customer import CustomerState
from service.domain.errors import NotOwner, SubscriptionNotFound


def subscribe(
    state: CustomerState,
    key: str,
    email: str,
    sku: str,
    locale_name: str,
    customer_reference: str | None,
) -> list[Event]:
    """Record a subscription (uniqueness of email+sku is the read model's unique key)."""
    if customer_reference is not None and not state.exists:
        raise NotOwner()
    return [
        AvailabilityNotificationSubscribed(
            subscription_key=key,
            email=email,
            sku=sku,
            locale_name=locale_name,
            customer_reference=customer_reference,
        )
    ]


def unsubscribe(state: CustomerState, key: str) -> list[Event]:
    """End a subscription the stream still holds."""
    if key not in state.subscriptions:
        raise SubscriptionNotFound()
    return [AvailabilityNotificationUnsubscribed(subscription_key=key)]
