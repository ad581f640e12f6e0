"""argon2id password hashing off the event loop, with bounded concurrency."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

# Niceness added to the hashing threads (Linux, where it is per thread).
HASH_THREAD_NICENESS = 10


def _lower_priority() -> None:
    # Hashing soaks up whatever CPU the event loop leaves over. At a lower priority
    # it never keeps a runnable event loop (and with it every other request) waiting
    # for a core; the hashes lose only the time the loop really uses.
    if sys.platform.startswith("linux"):
        tid = threading.get_native_id()
        with contextlib.suppress(OSError):
            nice = os.getpriority(os.PRIO_PROCESS, tid)
            os.setpriority(os.PRIO_PROCESS, tid, min(19, nice + HASH_THREAD_NICENESS))


class PasswordHasher:
    """Hashes and verifies in a small thread pool; callers queue in front of it."""

    def __init__(self, memory_kib: int, time_cost: int, workers: int) -> None:
        self._ph = argon2.PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=1, type=argon2.Type.ID
        )
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, workers), thread_name_prefix="argon2", initializer=_lower_priority
        )
        # Hashes wait here, not in the executor, so a burst cannot pile up work
        # that keeps running after its requests were abandoned. One hash waits in
        # the executor behind each running one: a thread that finishes starts the
        # next at once instead of idling until the busy loop hands it over.
        self.capacity = 2 * max(1, workers)
        self._slots = asyncio.Semaphore(self.capacity)
        self._dummy = self._ph.hash("not a real password: equalises timing")

    async def hash(self, password: str) -> str:
        """An argon2id hash of the password."""
        async with self._slots:
            return await asyncio.get_running_loop().run_in_executor(
                self._pool, self._ph.hash, password
            )

    async def verify(self, hashed: str | None, password: str) -> bool:
        """Whether the password matches; with no hash, burns the same time and says no."""
        async with self._slots:
            return await asyncio.get_running_loop().run_in_executor(
                self._pool, self._verify, hashed, password
            )

    def _verify(self, hashed: str | None, password: str) -> bool:
        try:
            ok = self._ph.verify(hashed or self._dummy, password)
        except (VerificationError, InvalidHashError):
            return False
        return ok and hashed is not None

    def needs_rehash(self, hashed: str) -> bool:
        """Whether the hash was made with other parameters than today's."""
        try:
            return self._ph.check_needs_rehash(hashed)
        except InvalidHashError:
            return True

    def close(self) -> None:
        """Stop the worker threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)
