"""Group commit: concurrent single-event appends share one statement and one commit.

A commit costs a round trip, a WAL flush and index page locks whether it writes one
row or fifty. Appends that arrive while a group is being written wait for the next
group instead of each paying that alone; an append that finds nothing in flight
goes at once (the group starts on the next turn of the event loop, so appends made
in the same turn join it). A group never holds two appends to one stream: the
second waits for the next group, so each row is checked against a head that is
already committed. Each append is acknowledged only once its group committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from events.types import NewEvent, Payload, RecordedEvent

log = logging.getLogger(__name__)

MAX_GROUP = 64

Request = tuple[str, NewEvent, "int | None", Payload]
WriteGroup = Callable[[Sequence[Request]], Awaitable[list[list[RecordedEvent] | BaseException]]]


@dataclass
class _Waiting:
    request: Request
    done: asyncio.Future[list[RecordedEvent]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class GroupCommit:
    """Queues single-event appends and writes them in groups, one group at a time."""

    def __init__(self, write: WriteGroup) -> None:
        self._write = write
        self._queue: list[_Waiting] = []
        self._draining: asyncio.Task[None] | None = None

    async def append(
        self, stream_id: str, new: NewEvent, expected: int | None, metadata: Payload
    ) -> list[RecordedEvent]:
        """Append with the next group; raises what the append alone would raise."""
        waiting = _Waiting((stream_id, new, expected, metadata))
        self._queue.append(waiting)
        if self._draining is None:
            self._draining = asyncio.get_running_loop().create_task(self._drain())
        return await waiting.done

    async def _drain(self) -> None:
        try:
            while self._queue:
                group: list[_Waiting] = []
                later: list[_Waiting] = []
                streams: set[str] = set()
                for waiting in self._queue:
                    stream_id = waiting.request[0]
                    if stream_id in streams or len(group) == MAX_GROUP:
                        later.append(waiting)
                    else:
                        streams.add(stream_id)
                        group.append(waiting)
                self._queue = later
                await self._write_group(group)
        finally:
            self._draining = None
            if self._queue:  # cancelled midway: whoever still waits gets a fresh drain
                self._draining = asyncio.get_running_loop().create_task(self._drain())

    async def _write_group(self, group: list[_Waiting]) -> None:
        try:
            results = await self._write([w.request for w in group])
        except BaseException as exc:
            # The statement failed as a whole (the database went away...): every append
            # in the group fails as it would have alone, and nothing was written.
            for waiting in group:
                if not waiting.done.done():
                    waiting.done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for waiting, result in zip(group, results, strict=True):
            if waiting.done.done():  # its caller was cancelled
                continue
            if isinstance(result, BaseException):
                waiting.done.set_exception(result)
            else:
                waiting.done.set_result(result)
