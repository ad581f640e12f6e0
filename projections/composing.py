"""The inline projection recorded as statements, so an append can run it in its own.

Handlers write through `execute` only for most events; run against a recorder
instead of a connection, they hand over their statements, and the store folds them
into the append (events/statements.py: compose_one). A handler that reads
(`fetch*`), uses `execute`'s status, or does anything with a value the log has not
assigned yet (position, transaction id; recorded_at is NOW, which only passes
through as an argument) is not recorded: that event takes the transaction path.
"""

from __future__ import annotations

from typing import Any, cast

import asyncpg

from events.store import PENDING_POSITION, PENDING_TRANSACTION, Statement
from events.types import RecordedEvent
from projections.batching import NO_STATUS
from projections.registry import ProjectionSet


class NotComposable(Exception):
    """The handler needs a real connection."""


class _Recorder:
    """Takes `execute` calls down; refuses everything else a connection offers."""

    def __init__(self) -> None:
        self.statements: list[Statement] = []

    async def execute(self, query: str, *args: Any) -> object:
        if any(a is PENDING_POSITION or a is PENDING_TRANSACTION for a in args):
            raise NotComposable
        self.statements.append((query, args))
        return NO_STATUS

    def __getattr__(self, name: str) -> Any:
        raise NotComposable(name)


async def record(projections: ProjectionSet, event: RecordedEvent) -> list[Statement] | None:
    """The statements the projections write for a draft event (maybe none), or None
    when they need a transaction."""
    recorder = _Recorder()
    try:
        await projections.apply(cast(asyncpg.Connection, recorder), [event])
    except Exception:
        # NotComposable, or a handler computing with a pending value: the transaction
        # path runs it with the real values.
        return None
    return recorder.statements
