"""The argon2id hasher registration and login share: parameters, thread pool, priority."""

from __future__ import annotations

import asyncio
import os
import sys
import threading

import argon2
import pytest

from service.auth.passwords import HASH_THREAD_NICENESS, PasswordHasher


@pytest.fixture
def hasher() -> PasswordHasher:
    h = PasswordHasher(memory_kib=1024, time_cost=1, workers=2)
    yield h
    h.close()


async def test_hashes_are_argon2id_with_the_configured_parameters(hasher: PasswordHasher) -> None:
    params = argon2.extract_parameters(await hasher.hash("Secret123!"))
    assert (params.type, params.memory_cost, params.time_cost, params.parallelism) == (
        argon2.Type.ID,
        1024,
        1,
        1,
    )


async def test_a_hash_verifies_its_password_only(hasher: PasswordHasher) -> None:
    hashed = await hasher.hash("Secret123!")
    assert await hasher.verify(hashed, "Secret123!")
    assert not await hasher.verify(hashed, "Secret123?")


async def test_verifying_against_no_hash_says_no(hasher: PasswordHasher) -> None:
    assert not await hasher.verify(None, "not a real password: equalises timing")


async def test_the_event_loop_keeps_running_while_a_hash_is_computed() -> None:
    hasher = PasswordHasher(memory_kib=4096, time_cost=1, workers=1)
    try:
        ticks = 0
        hashing = asyncio.ensure_future(hasher.hash("Secret123!"))
        while not hashing.done():
            ticks += 1
            await asyncio.sleep(0)
        await hashing
    finally:
        hasher.close()
    # A hash run on the loop thread would finish before the loop ticked even twice.
    assert ticks > 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux")
async def test_hashing_threads_run_at_a_lower_priority_than_the_loop(
    hasher: PasswordHasher,
) -> None:
    await hasher.hash("Secret123!")
    own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    workers = [t.native_id for t in hasher._pool._threads]
    assert workers
    for tid in workers:
        assert os.getpriority(os.PRIO_PROCESS, tid) == min(19, own + HASH_THREAD_NICENESS)


def _record_hashes(hasher: PasswordHasher) -> list[str]:
    """The passwords the hasher's threads hash from now on, in the order they start."""
    ran: list[str] = []
    inner = hasher._ph

    class Recording:
        def hash(self, password: str) -> str:
            ran.append(password)
            return inner.hash(password)

    hasher._ph = Recording()  # type: ignore[assignment]
    return ran


async def test_a_thread_goes_on_to_the_next_queued_hash_without_the_event_loop() -> None:
    hasher = PasswordHasher(memory_kib=4096, time_cost=1, workers=1)
    ran = _record_hashes(hasher)
    try:
        burst = [asyncio.ensure_future(hasher.hash(f"Secret{i}!")) for i in range(3)]
        await asyncio.sleep(0)  # each hash asked for its slot
        behind = threading.Event()
        hasher._pool.submit(behind.set)
        # The loop is blocked until the thread reaches what was queued behind the
        # burst: only hashes handed over before it can have run meanwhile.
        assert behind.wait(timeout=60)
        assert ran == ["Secret0!", "Secret1!"]
        await asyncio.gather(*burst)
        assert ran == ["Secret0!", "Secret1!", "Secret2!"]
    finally:
        hasher.close()


async def test_a_queued_hash_whose_request_was_abandoned_never_runs() -> None:
    hasher = PasswordHasher(memory_kib=4096, time_cost=1, workers=1)
    ran = _record_hashes(hasher)
    release = threading.Event()
    hasher._pool.submit(release.wait, 60)  # holds the only thread
    try:
        burst = [asyncio.ensure_future(hasher.hash(f"Secret{i}!")) for i in range(3)]
        await asyncio.sleep(0)  # two handed to the executor, the third waits for a slot
        burst[1].cancel()  # its client went away while its hash was queued
        release.set()
        await asyncio.gather(burst[0], burst[2])
        assert burst[1].cancelled()
        assert ran == ["Secret0!", "Secret2!"]
    finally:
        release.set()
        hasher.close()
