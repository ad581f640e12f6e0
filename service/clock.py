"""An injectable clock, so expiry and rate windows are testable without sleeping."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass
class Clock:
    """Wall-clock time in UTC, optionally shifted (tests move it forward)."""

    offset: timedelta = timedelta(0)

    def now(self) -> datetime:
        """The current instant."""
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        """Move this clock forward (tests only)."""
        self.offset += delta
