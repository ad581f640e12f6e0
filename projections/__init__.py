"""Read models built from the log. `inline_projections` run inside append transactions."""

from __future__ import annotations

from projections import addresses, customers, subscriptions
from projections.registry import ProjectionSet

inline_projections = ProjectionSet(
    projectors=[customers.projector, addresses.projector, subscriptions.projector]
)
