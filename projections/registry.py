"""Projectors: plain functions per event type writing read-model tables."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import asyncpg

from events.types import RecordedEvent

Handler = Callable[[asyncpg.Connection, RecordedEvent], Awaitable[None]]


@dataclass
class Projector:
    """One read model: the tables it owns and a handler per event type.

    Handlers write with `execute` and may read with `fetch*`, but must not branch
    on `execute`'s status: a rebuild batches their statements (projections/batching.py).
    """

    name: str
    tables: tuple[str, ...]
    handlers: dict[str, Handler] = field(default_factory=dict)

    def on(self, *type_names: str) -> Callable[[Handler], Handler]:
        """Register a handler for event types (decorator)."""

        def decorate(fn: Handler) -> Handler:
            for type_name in type_names:
                self.handlers[type_name] = fn
            return fn

        return decorate


@dataclass
class ProjectionSet:
    """The projectors run inline, inside the append transaction (read-your-writes)."""

    projectors: Sequence[Projector]

    @property
    def tables(self) -> list[str]:
        """Every read-model table, in projector order."""
        return [t for p in self.projectors for t in p.tables]

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        """Project events in order. Erased events belong to anonymised streams whose
        rows are gone for good, so they are skipped rather than half-projected."""
        for event in events:
            if event.erased:
                continue
            for projector in self.projectors:
                handler = projector.handlers.get(event.event_type)
                if handler is not None:
                    await handler(conn, event)
