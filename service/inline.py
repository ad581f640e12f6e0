"""What runs inside every append: the read-model projections, counted in the metrics,
with token-generation changes announced; and the same in one-statement form."""

from __future__ import annotations

from collections.abc import Sequence

from events.store import InlineProjection, Statement
from events.types import RecordedEvent
from projections import composing
from projections.registry import ProjectionSet
from service.auth.tokencache import TokenCache
from service.metrics import Metrics


class Inline:
    """The inline projection for EventStore, and its Composer."""

    def __init__(self, projections: ProjectionSet, metrics: Metrics, tokens: TokenCache) -> None:
        self._projections = projections
        self._metrics = metrics
        self._tokens = tokens
        # Counted there: the inline projection sees every append, from every writer.
        self.projection: InlineProjection = tokens.watch(metrics.count_appends(projections.apply))

    async def statements(self, event: RecordedEvent) -> list[Statement] | None:
        """The projection of a draft event as statements (None: it needs a transaction,
        e.g. a token-generation change, whose NOTIFY belongs in it)."""
        if self._tokens.watches(event.event_type):
            return None
        return await composing.record(self._projections, event)

    def committed(self, recorded: Sequence[RecordedEvent]) -> None:
        """Count what a composed append wrote."""
        self._metrics.count_events(recorded)
