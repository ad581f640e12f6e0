"""Running a command: fold the stream, decide, append; retry on a lost race, then 409."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp import web

from events.store import ConcurrencyError, EventStore
from events.types import Event, NewEvent, RecordedEvent
from service.domain.customer import CustomerState, fold
from service.domain.errors import ConcurrentModification
from service.typedefs import PRINCIPAL, REQUEST_ID, STORE

ATTEMPTS = 5

Decide = Callable[[CustomerState], Sequence[Event] | Sequence[NewEvent]]
AfterAppend = Callable[[asyncpg.Connection, CustomerState], Awaitable[None]]


@dataclass(frozen=True)
class Outcome:
    """What a command did: the state after it and the events it recorded."""

    state: CustomerState
    recorded: list[RecordedEvent]


def metadata_of(request: web.Request, customer: str | None = None) -> dict[str, Any]:
    """Who caused the events of this request, and in which request.

    `customer`: the customer an unauthenticated request acts as (their own
    registration, or a key only their mailbox received); else "anonymous".
    """
    principal = request.get(PRINCIPAL)
    if principal is not None:
        actor = principal.actor
    else:
        actor = f"customer:{customer}" if customer is not None else "anonymous"
    return {
        "actor": actor,
        "request_id": request.get(REQUEST_ID),
        "correlation_id": request.headers.get("X-Correlation-Id") or request.get(REQUEST_ID),
    }


async def execute(
    store: EventStore,
    stream_id: str,
    decide: Decide,
    metadata: dict[str, Any],
    after: AfterAppend | None = None,
) -> Outcome:
    """Run `decide` on the stream's current state and append what it returns.

    The decision is made again on fresh state when another writer got there
    first; after ATTEMPTS lost races the command gives up (409). `after` runs in
    the same transaction once the events are appended (e.g. token revocation).
    """
    for _ in range(ATTEMPTS):
        try:
            async with store.transaction() as conn:
                state = fold(await store.read_stream(stream_id, conn=conn))
                decided = [e if isinstance(e, NewEvent) else NewEvent(e) for e in decide(state)]
                if not decided:
                    return Outcome(state, [])
                recorded = await store.append(
                    stream_id, decided, expected_version=state.version, metadata=metadata, conn=conn
                )
                new_state = fold(recorded, state)
                if after is not None:
                    await after(conn, new_state)
                return Outcome(new_state, recorded)
        except ConcurrencyError:
            continue
    raise ConcurrentModification(stream_id)


async def run(
    request: web.Request,
    stream_id: str,
    decide: Decide,
    after: AfterAppend | None = None,
    customer: str | None = None,
) -> Outcome:
    """`execute` with the request's store and metadata (`customer`: see metadata_of)."""
    metadata = metadata_of(request, customer)
    return await execute(request.app[STORE], stream_id, decide, metadata, after)
