"""Work a request starts but does not wait for, drained before the app closes its resources."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class Background:
    """A bounded set of tasks: `spawn` waits for a free slot, so a flood queues in front."""

    def __init__(self, limit: int = 64) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(limit)

    async def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Start `work`; failures are logged, never raised to the caller."""
        await self._slots.acquire()
        task = asyncio.get_running_loop().create_task(self._run(work, name), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, work: Coroutine[Any, Any, None], name: str) -> None:
        try:
            await work
        except Exception:
            log.exception("background work %s failed", name)
        finally:
            self._slots.release()

    async def drain(self) -> None:
        """Wait until every task started so far (and any they start) has finished."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
