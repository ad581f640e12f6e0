"""Running a command: fold the stream, decide, append; retry on a lost race, then 409."""

from __future__ import annotations

import asyncio
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp import web

from events.store import ConcurrencyError, EventStore, StreamErased
from events.types import Event, NewEvent, RecordedEvent
from service.domain.customer import CustomerState, fold
from service.domain.errors import ConcurrentModification, DomainError
from service.middlewares import ID_PATTERN
from service.typedefs import PRINCIPAL, REQUEST_ID, STATES, STORE

ATTEMPTS = 5
# The first retry's longest pause; each later one may wait twice as long (at most 32x).
BACKOFF_SECONDS = 0.001

Decide = Callable[[CustomerState], Sequence[Event] | Sequence[NewEvent]]
AfterAppend = Callable[[asyncpg.Connection, CustomerState], Awaitable[None]]


@dataclass(frozen=True)
class Outcome:
    """What a command did: the state after it and the events it recorded."""

    state: CustomerState
    recorded: list[RecordedEvent]


class StateCache:
    """Folded states of recently commanded streams, per process.

    The log never changes below a version once written, so a state folded up to
    version v stays true; a command folds only the events after v (read in its own
    transaction) instead of decrypting the whole stream again. Anonymised streams
    are dropped, so no erased customer's data lingers in memory.
    """

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._states: OrderedDict[str, CustomerState] = OrderedDict()

    def get(self, stream_id: str) -> CustomerState | None:
        """The cached state (callers fold onto a copy, never mutate it)."""
        state = self._states.get(stream_id)
        if state is not None:
            self._states.move_to_end(stream_id)
        return state

    def put(self, stream_id: str, state: CustomerState) -> None:
        """Remember a state folded from committed events."""
        if state.anonymized:
            self._states.pop(stream_id, None)
            return
        self._states[stream_id] = state
        self._states.move_to_end(stream_id)
        while len(self._states) > self._size:
            self._states.popitem(last=False)


class _Unverified(Exception):
    """A decision on a cached state that no append confirmed: decide again on the log."""


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
    request_id = request.get(REQUEST_ID)
    # Metadata is never shredded: only an identifier is kept, not free text that
    # could carry personal data.
    sent = request.headers.get("X-Correlation-Id", "")
    return {
        "actor": actor,
        "request_id": request_id,
        # The request is the message that caused these events; the correlation id
        # ties them to whatever larger flow the client says the request belongs to.
        "causation_id": request_id,
        "correlation_id": sent if ID_PATTERN.fullmatch(sent) else request_id,
    }


async def execute(
    store: EventStore,
    stream_id: str,
    decide: Decide,
    metadata: dict[str, Any],
    after: AfterAppend | None = None,
    cache: StateCache | None = None,
) -> Outcome:
    """Run `decide` on the stream's current state and append what it returns.

    The decision is made again on fresh state when another writer got there
    first; after ATTEMPTS lost races the command gives up (409). `after` runs in
    the same transaction once the events are appended (e.g. token revocation).
    """
    for attempt in range(ATTEMPTS + 1):
        known = cache.get(stream_id) if cache is not None else None
        # First try: trust the cached state and let the append's version check prove
        # it current, which saves reading the stream. What no append can prove (a
        # refusal, a no-op, a lost race) is decided again on the log.
        optimistic = attempt == 0 and known is not None
        try:
            if after is None:
                # Nothing else to do in the append's transaction: the store runs the
                # append (and its projection) on its own, in one statement when it can.
                # The read needs no transaction: the expected version guards the append.
                state = await _current(store, stream_id, known, optimistic, None)
                outcome = await _decide_and_append(
                    store, stream_id, decide, state, optimistic, metadata, None
                )
            else:
                async with store.transaction() as conn:
                    state = await _current(store, stream_id, known, optimistic, conn)
                    outcome = await _decide_and_append(
                        store, stream_id, decide, state, optimistic, metadata, conn
                    )
                    if outcome.recorded:
                        await after(conn, outcome.state)
        except _Unverified:
            continue
        except ConcurrencyError:
            if attempt < ATTEMPTS:  # no pause before the 409
                await _back_off(attempt)
            continue
        except StreamErased:
            # The customer was anonymised after the state was read (or a stale cached
            # state still thinks them alive): the next read of the log holds the
            # anonymisation, and the decision refuses an erased customer.
            continue
        # Only now: a state is cached once the events it folds are committed.
        if cache is not None:
            cache.put(stream_id, outcome.state)
        return outcome
    raise ConcurrentModification(stream_id)


async def _back_off(attempt: int) -> None:
    # Writers that lost a race to one stream would otherwise all come back at once
    # and collide again; a random pause, doubling per attempt, spreads them out.
    await asyncio.sleep(random.uniform(0, BACKOFF_SECONDS * 2**attempt))


async def _current(
    store: EventStore,
    stream_id: str,
    known: CustomerState | None,
    optimistic: bool,
    conn: asyncpg.Connection | None,
) -> CustomerState:
    """The state to decide on: the cached one as it is (optimistic), else the cached
    one brought up to date with the events after it (or the whole stream)."""
    if optimistic:
        return fold((), known)
    since = known.version if known is not None else 0
    newer = await store.read_stream(stream_id, conn=conn, after_version=since)
    return fold(newer, known)


async def _decide_and_append(
    store: EventStore,
    stream_id: str,
    decide: Decide,
    state: CustomerState,
    optimistic: bool,
    metadata: dict[str, Any],
    conn: asyncpg.Connection | None,
) -> Outcome:
    try:
        produced = decide(state)
    except DomainError:
        if optimistic:
            raise _Unverified from None
        raise
    decided = [e if isinstance(e, NewEvent) else NewEvent(e) for e in produced]
    if not decided:
        if optimistic:
            raise _Unverified
        return Outcome(state, [])
    recorded = await store.append(
        stream_id, decided, state.version, metadata, conn, savepoint=False
    )
    # `state` is this attempt's own copy: fold onto it.
    return Outcome(fold(recorded, state, copy=False), recorded)


async def run(
    request: web.Request,
    stream_id: str,
    decide: Decide,
    after: AfterAppend | None = None,
    customer: str | None = None,
) -> Outcome:
    """`execute` with the request's store and metadata (`customer`: see metadata_of)."""
    metadata = metadata_of(request, customer)
    return await execute(
        request.app[STORE], stream_id, decide, metadata, after, request.app.get(STATES)
    )
