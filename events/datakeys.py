"""Per-stream data keys in the database, with a small in-process cache for writers."""

from __future__ import annotations

from collections import OrderedDict

import asyncpg

from events.crypto import KeyRing

_SELECT = "SELECT wrapped_key FROM data_keys WHERE stream_id = $1"


class StreamErased(Exception):
    """Personal data was offered for a stream whose data key is destroyed."""


class DataKeys:
    """Finds or creates a stream's data key for sealing new personal fields.

    The cache saves a round trip per append. It may go stale (the key rolled back
    with the transaction that created it, or erased by another process), so every
    append that seals checks, in its own INSERT, that the wrapped key it used is
    still the stream's live key; see `WRITABLE` in events/store.py.
    """

    def __init__(self, keyring: KeyRing, capacity: int = 10_000) -> None:
        self.keyring = keyring
        self._capacity = capacity
        self._cache: OrderedDict[str, tuple[bytes, bytes]] = OrderedDict()

    async def for_writing(
        self, conn: asyncpg.Connection, stream_id: str, new_stream: bool = False
    ) -> tuple[bytes, bytes]:
        """(data key, wrapped key) of the stream; creates the key on first use.

        `new_stream`: the stream has no events yet, so the key most likely does not
        exist either: try creating it first (one round trip instead of two).
        Raises StreamErased once the stream's key was destroyed.
        """
        cached = self._cache.get(stream_id)
        if cached is not None:
            self._cache.move_to_end(stream_id)
            return cached
        row = None if new_stream else await conn.fetchrow(_SELECT, stream_id)
        if row is None:
            fresh = self.keyring.new_data_key()
            wrapped = self.keyring.wrap(stream_id, fresh)
            # ON CONFLICT: a concurrent first writer may have won; then use its key.
            inserted = await conn.fetchval(
                """INSERT INTO data_keys (stream_id, wrapped_key) VALUES ($1, $2)
                   ON CONFLICT (stream_id) DO NOTHING RETURNING stream_id""",
                stream_id,
                wrapped,
            )
            if inserted is not None:
                return self._remember(stream_id, (fresh, wrapped))
            row = await conn.fetchrow(_SELECT, stream_id)
        if row is None or row["wrapped_key"] is None:
            raise StreamErased(stream_id)
        wrapped = row["wrapped_key"]
        return self._remember(stream_id, (self.keyring.unwrap(stream_id, wrapped), wrapped))

    def cached(self, stream_id: str) -> bool:
        """Whether the stream's key is at hand without a round trip."""
        return stream_id in self._cache

    def fresh(self, stream_id: str) -> tuple[bytes, bytes]:
        """A new (data key, wrapped key) for a stream, not stored: the caller's statement
        inserts it, and `remember`s it once that committed."""
        key = self.keyring.new_data_key()
        return key, self.keyring.wrap(stream_id, key)

    def remember(self, stream_id: str, key: tuple[bytes, bytes]) -> None:
        """Cache a key the caller stored."""
        self._remember(stream_id, key)

    def adopt(self, stream_id: str, wrapped: bytes) -> None:
        """Cache the stream's live wrapped key (found after a write refused ours)."""
        self._remember(stream_id, (self.keyring.unwrap(stream_id, wrapped), wrapped))

    def forget(self, stream_id: str) -> None:
        """Drop a cached key (it turned out stale, or the stream is being erased)."""
        self._cache.pop(stream_id, None)

    async def erase(self, conn: asyncpg.Connection, stream_id: str) -> None:
        """Destroy the stream's key for good, leaving a tombstone no new key may replace."""
        self.forget(stream_id)
        await conn.execute(
            """INSERT INTO data_keys (stream_id, wrapped_key, erased_at) VALUES ($1, NULL, now())
               ON CONFLICT (stream_id) DO UPDATE SET wrapped_key = NULL, erased_at = now()""",
            stream_id,
        )

    def _remember(self, stream_id: str, entry: tuple[bytes, bytes]) -> tuple[bytes, bytes]:
        self._cache[stream_id] = entry
        self._cache.move_to_end(stream_id)
        while len(self._cache) > self._capacity:
            self._cache.popitem(last=False)
        return entry
