"""Group commit: concurrent single-event appends share one statement and one commit.

A commit costs a round trip, a WAL flush and index page locks whether it writes one
row or fifty. Up to IN_FLIGHT statements are written at once. Appends that arrive in
one turn of the event loop go each alone, side by side, when they fit the free
slots; when more arrive than fit, they go as one group, and appends arriving while
every slot is busy wait for the next group instead of each paying a commit alone.
No two appends to one stream are written at once, in one group or two: the second
waits, so each row is checked against a head that is already committed. Each append
is acknowledged only once its statement committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from events.types import NewEvent, Payload, RecordedEvent

MAX_GROUP = 64
# Statements written at once: one alone would leave the other connections idle while
# it waits for its commit; many would make groups of one (4: the best of 2, 3 and 4
# in bench event_store at 4 and 16 writers).
IN_FLIGHT = 4

Request = tuple[str, NewEvent, "int | None", Payload]
WriteGroup = Callable[[Sequence[Request]], Awaitable[list[list[RecordedEvent] | BaseException]]]


@dataclass
class _Waiting:
    request: Request
    done: asyncio.Future[list[RecordedEvent]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class GroupCommit:
    """Queues single-event appends and writes them in groups, a few groups at a time."""

    def __init__(self, write: WriteGroup, in_flight: int = IN_FLIGHT) -> None:
        self._write = write
        self._limit = in_flight
        self._queue: list[_Waiting] = []
        self._busy: set[str] = set()  # streams of the groups being written
        self._groups: set[asyncio.Task[None]] = set()
        self._kick_due = False

    async def append(
        self, stream_id: str, new: NewEvent, expected: int | None, metadata: Payload
    ) -> list[RecordedEvent]:
        """Append with the next group; raises what the append alone would raise."""
        waiting = _Waiting((stream_id, new, expected, metadata))
        self._queue.append(waiting)
        if not self._kick_due:
            # On the next turn of the loop, so that appends made in this one join.
            self._kick_due = True
            asyncio.get_running_loop().call_soon(self._kick)
        return await waiting.done

    def _kick(self) -> None:
        self._kick_due = False
        while self._queue and len(self._groups) < self._limit:
            group: list[_Waiting] = []
            later: list[_Waiting] = []
            for waiting in self._queue:
                if waiting.done.cancelled():
                    continue  # its caller gave up before it was sent: not written
                stream_id = waiting.request[0]
                if stream_id in self._busy or len(group) == MAX_GROUP:
                    later.append(waiting)
                else:
                    self._busy.add(stream_id)
                    group.append(waiting)
            self._queue = later
            if not group:
                return  # what waits is for streams being written: their groups kick again
            free = self._limit - len(self._groups)
            # Few enough to go side by side: each alone, as without grouping (one group
            # of four at four writers ran 0.45x raw where four alone run 0.59x).
            parts = [[w] for w in group] if len(group) <= free else [group]
            for part in parts:
                task = asyncio.get_running_loop().create_task(self._run(part))
                self._groups.add(task)

    async def _run(self, group: list[_Waiting]) -> None:
        try:
            await self._write_group(group)
        finally:
            self._groups.discard(asyncio.current_task())  # type: ignore[arg-type]
            for waiting in group:
                self._busy.discard(waiting.request[0])
            self._kick()

    async def _write_group(self, group: list[_Waiting]) -> None:
        try:
            results = await self._write([w.request for w in group])
        except asyncio.CancelledError:
            for waiting in group:
                waiting.done.cancel()
            raise
        except Exception as exc:
            # The statement failed as a whole (the database went away...): every append
            # in the group fails as it would have alone, and nothing was written.
            for waiting in group:
                if not waiting.done.done():
                    waiting.done.set_exception(exc)
            return
        for waiting, result in zip(group, results, strict=True):
            if waiting.done.done():  # its caller was cancelled
                continue
            if isinstance(result, BaseException):
                waiting.done.set_exception(result)
            else:
                waiting.done.set_result(result)
