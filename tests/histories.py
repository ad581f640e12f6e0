"""Random customer histories (Hypothesis) appended through the real store, for rebuild tests.

A history is a list of steps over a few customer slots; `append_history` plays
it, skipping steps the domain would refuse (editing an anonymised customer, taking
an email someone holds), so every history is one the service could have recorded.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from hypothesis import strategies as st

from events.customer import (
    AvailabilityNotificationSubscribed,
    AvailabilityNotificationUnsubscribed,
    CustomerAddressAdded,
    CustomerAddressRemoved,
    CustomerAddressUpdated,
    CustomerAnonymized,
    CustomerConfirmed,
    CustomerCreated,
    CustomerPasswordChanged,
    CustomerPasswordResetRequested,
    CustomerUpdated,
    customer_stream,
)
from events.store import EventStore
from events.types import Event, NewEvent

SLOTS = 2
# Quotes, backslashes, dollar signs, non-ASCII: whatever a name may hold.
text = st.text(
    st.sampled_from("a'\\$;\"%é\n")
    | st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
    max_size=12,
)
maybe_text = st.none() | text
slot = st.integers(0, SLOTS - 1)
profile_field = st.sampled_from(
    ["salutation", "first_name", "last_name", "gender", "date_of_birth"]
)

step = st.one_of(
    st.tuples(st.just("create"), slot, st.integers(0, 3), text, maybe_text),
    st.tuples(st.just("update"), slot, st.lists(profile_field, unique=True, min_size=1), text),
    st.tuples(st.just("email"), slot, st.integers(0, 3), st.booleans()),
    st.tuples(st.just("confirm"), slot),
    st.tuples(st.just("password"), slot, st.booleans()),
    st.tuples(st.just("reset"), slot),
    st.tuples(st.just("add_address"), slot, st.booleans(), st.booleans(), maybe_text, text),
    st.tuples(st.just("update_address"), slot, st.integers(0, 3), st.booleans(), maybe_text),
    st.tuples(st.just("remove_address"), slot, st.integers(0, 3)),
    st.tuples(st.just("subscribe"), slot, st.integers(0, 2)),
    st.tuples(st.just("unsubscribe"), slot, st.integers(0, 3)),
    st.tuples(st.just("anonymise"), slot),
)
histories = st.lists(step, min_size=1, max_size=30)


@dataclass
class _Customer:
    reference: str
    email: str
    confirmed: bool = False
    addresses: list[str] = field(default_factory=list)
    # key, and the (email, sku) the subscription row holds (its email is the one of then)
    subscriptions: list[tuple[str, tuple[str, str]]] = field(default_factory=list)


@dataclass
class _World:
    prefix: str
    customers: dict[int, _Customer] = field(default_factory=dict)
    gone: set[int] = field(default_factory=set)  # anonymised slots stay gone
    emails: set[str] = field(default_factory=set)  # lower-case, held by a live customer
    subscribed: set[tuple[str, str]] = field(default_factory=set)

    def email(self, n: int, upper: bool = False) -> str:
        address = f"{self.prefix}.{n}@Example.test"
        return address.upper() if upper else address


def _hex() -> str:
    return uuid.uuid4().hex + uuid.uuid4().hex


def _value(name: str, seed: str) -> Any:
    if name == "salutation":
        return ["Mr", "Mrs", "Ms", "Dr"][len(seed) % 4]
    if name == "gender":
        return [None, "Male", "Female"][len(seed) % 3]
    if name == "date_of_birth":
        return date(1950 + len(seed), 1 + len(seed) % 12, 1).isoformat()
    return seed or None


def _events(world: _World, step: tuple[Any, ...]) -> tuple[int, list[Event], bool]:
    """The events one step records for its slot (empty when the domain would refuse)."""
    kind, n = step[0], step[1]
    c = world.customers.get(n)
    if n in world.gone:
        return n, [], False
    if kind == "create":
        email = world.email(step[2])
        if c is not None or email.lower() in world.emails:
            return n, [], False
        ref = f"HY-{world.prefix}--{n}"
        world.customers[n] = _Customer(ref, email)
        world.emails.add(email.lower())
        return (
            n,
            [
                CustomerCreated(
                    customer_reference=ref,
                    email=email,
                    salutation="Mr",
                    first_name=step[3],
                    last_name=step[4],
                    gender=None,
                    date_of_birth=None,
                    password_hash=f"$argon2id$fake${step[3]}",
                    registration_key_hash=_hex(),
                )
            ],
            False,
        )
    if c is None:
        return n, [], False
    if kind == "update":
        values = {name: _value(name, step[3]) for name in step[2]}
        return n, [CustomerUpdated(changed=list(step[2]), **values)], False
    if kind == "email":
        email = world.email(step[2], upper=step[3])
        if email.lower() in world.emails and email.lower() != c.email.lower():
            return n, [], False
        world.emails.discard(c.email.lower())
        world.emails.add(email.lower())
        c.email = email
        return n, [CustomerUpdated(changed=["email"], email=email)], False
    if kind == "confirm":
        if c.confirmed:
            return n, [], False
        c.confirmed = True
        return n, [CustomerConfirmed(registration_key_hash="")], False
    if kind == "password":
        reason = "rehash" if step[2] else "change"
        return (
            n,
            [CustomerPasswordChanged(password_hash=f"$argon2id${_hex()}", reason=reason)],
            False,
        )
    if kind == "reset":
        return (
            n,
            [
                CustomerPasswordResetRequested(
                    key_hash=_hex(), expires_at="2030-01-01T00:00:00+00:00"
                )
            ],
            False,
        )
    if kind == "add_address":
        address_id = str(uuid.uuid4())
        c.addresses.append(address_id)
        first = len(c.addresses) == 1
        return (
            n,
            [
                CustomerAddressAdded(
                    address_id=address_id,
                    salutation="Ms",
                    first_name=step[4],
                    last_name="Roe",
                    address1=step[5],
                    address2="2",
                    zip_code="10115",
                    city="Berlin",
                    iso2_code="DE",
                    is_default_shipping=first or step[2],
                    is_default_billing=first or step[3],
                )
            ],
            False,
        )
    if kind == "update_address":
        if not c.addresses:
            return n, [], False
        address_id = c.addresses[step[2] % len(c.addresses)]
        return (
            n,
            [
                CustomerAddressUpdated(
                    address_id=address_id,
                    changed=["city", "company"],
                    city="Hamburg",
                    company=step[4],
                    is_default_shipping=step[3] or None,
                    is_default_billing=not step[3] or None,
                )
            ],
            False,
        )
    if kind == "remove_address":
        if not c.addresses:
            return n, [], False
        address_id = c.addresses.pop(step[2] % len(c.addresses))
        return n, [CustomerAddressRemoved(address_id=address_id)], False
    if kind == "subscribe":
        sku = f"SKU-{step[2]}"
        if (c.email.lower(), sku) in world.subscribed:
            return n, [], False
        key = uuid.uuid4().hex
        world.subscribed.add((c.email.lower(), sku))
        c.subscriptions.append((key, (c.email.lower(), sku)))
        return (
            n,
            [
                AvailabilityNotificationSubscribed(
                    subscription_key=key,
                    email=c.email,
                    sku=sku,
                    locale_name="en_US",
                    customer_reference=c.reference,
                )
            ],
            False,
        )
    if kind == "unsubscribe":
        if not c.subscriptions:
            return n, [], False
        key, held = c.subscriptions.pop(step[2] % len(c.subscriptions))
        world.subscribed.discard(held)
        return n, [AvailabilityNotificationUnsubscribed(subscription_key=key)], False
    # anonymise
    world.gone.add(n)
    world.emails.discard(c.email.lower())
    world.subscribed -= {held for _, held in c.subscriptions}
    return n, [CustomerAnonymized()], True


# Every kind of step once, in an order where each records its events.
EVERY_STEP: list[tuple[Any, ...]] = [
    ("create", 0, 0, "Ann", "O'Neil \\ $1"),
    ("confirm", 0),
    ("update", 0, ["first_name", "gender", "date_of_birth"], "Zoë"),
    ("email", 0, 1, True),
    ("password", 0, False),
    ("password", 0, True),
    ("reset", 0),
    ("add_address", 0, False, False, None, "Main St. 1"),
    ("add_address", 0, True, False, "Bo", "Side St. 2"),
    ("update_address", 0, 0, True, "ACME"),
    ("remove_address", 0, 1),
    ("subscribe", 0, 0),
    ("subscribe", 0, 1),
    ("unsubscribe", 0, 0),
    ("create", 1, 0, "Ben 'the' \\ $2", "D'Arcy"),  # takes the email customer 0 gave up
    ("add_address", 1, True, True, None, "Third St. 3"),
    ("subscribe", 1, 1),
    ("anonymise", 0),
    ("subscribe", 1, 2),
]


async def append_history(store: EventStore, history: list[tuple[Any, ...]]) -> list[str]:
    """Append a history through the store (inline projections included); returns its streams.

    A step on a slot with no customer yet registers one first, so that short
    random histories still reach addresses, subscriptions and anonymisation.
    """
    world = _World(prefix=uuid.uuid4().hex[:8])
    for step in history:
        if step[1] not in world.customers and step[0] != "create":
            await _append(store, world, ("create", step[1], step[1], "Auto", None))
        await _append(store, world, step)
    return [customer_stream(c.reference) for c in world.customers.values()]


async def _append(store: EventStore, world: _World, step: tuple[Any, ...]) -> None:
    n, events, erase = _events(world, step)
    if events:
        stream = customer_stream(world.customers[n].reference)
        if not erase:
            # On its own, with the expected version: a single event goes through the
            # composed path (append and projection in one statement), several through
            # the transaction path, so the replay is compared with both.
            version = await store.stream_version(stream)
            await store.append(stream, [NewEvent(e) for e in events], version, {"actor": "system"})
            return
        async with store.transaction() as conn:
            await store.append(
                stream, [NewEvent(e) for e in events], None, {"actor": "system"}, conn=conn
            )
            if erase:
                await store.erase(conn, stream)
