"""A progress bar for long maintenance commands: done/total, events/s and ETA on stderr."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class ProgressBar:
    """Redraws one line on a terminal; elsewhere (logs, CI) prints a line every few seconds."""

    def __init__(
        self,
        label: str,
        stream: TextIO | None = None,
        width: int = 30,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self._clock = clock
        self._started = clock()
        self._shown = float("-inf")
        self._tty = self.stream.isatty()
        self._interval = 0.1 if self._tty else 2.0
        self._last = ""
        self._phase = ""

    def __call__(self, phase: str, done: int, total: int) -> None:
        """Report progress; redraws at most every interval (at once when the phase changes)."""
        now = self._clock()
        if phase == self._phase and now - self._shown < self._interval:
            return
        self._shown, self._phase = now, phase
        elapsed = max(now - self._started, 1e-9)
        rate = done / elapsed
        total = max(total, done, 1)
        filled = int(self.width * done / total)
        eta = _duration((total - done) / rate) if rate > 0 else "?"
        line = (
            f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] "
            f"{done:,}/{total:,} events  {rate:,.0f} events/s  ETA {eta}  {phase}"
        )
        self._last = line
        if self._tty:
            self.stream.write("\r" + line + "\x1b[K")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self) -> str:
        """End the line; returns the summary (elapsed time included)."""
        summary = f"{self._last}  in {_duration(self._clock() - self._started)}"
        if self._tty:
            self.stream.write("\n")
            self.stream.flush()
        return summary
