"""Pure-Python mirrors of the inline projectors, for the bulk path of `replay`.

A mirror folds ONE stream's events into the rows that stream contributes to each
read-model table, exactly as its projector's SQL would; the bulk path then COPYs
those rows. That is valid because every projector here keys its rows by the
event's stream (customer reference, address id, subscription key): what one
stream's events do never depends on another stream's rows.

One module here per projector module. Each mirror records the fingerprint of
the projector module it mirrors: when the projector changes, the fingerprint no
longer matches and `replay` takes the handler path (slower, always right) until
someone updates the mirror and its fingerprint; the Hypothesis test in
tests/test_replay_verify.py holds the two to the same tables.
"""

from __future__ import annotations

from projections.mirrors import addresses, customers, subscriptions
from projections.mirrors.base import Mirror, Tables, fingerprint

MIRRORS: dict[str, Mirror] = {
    m.name: m for m in (customers.mirror, addresses.mirror, subscriptions.mirror)
}

__all__ = ["MIRRORS", "Mirror", "Tables", "fingerprint"]
