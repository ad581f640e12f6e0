"""`python -m service follow`: an example consumer that tails the event feed.

It is what another team's service would run: it streams /event-feed (Server-Sent
Events), hands each event to a handler (here: print one JSON line), and only
then records the event's cursor in a checkpoint file. After a crash or a lost
connection it resumes with `Last-Event-ID` from that file, so it sees every
event at least once, in feed order; handlers must therefore be idempotent.

Credentials: FEED_TOKEN (an access token), or FEED_CLIENT_ID and
FEED_CLIENT_SECRET for the client-credentials grant at /token (needs events:read).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

Handler = Callable[[dict[str, Any]], Awaitable[None]]


class Checkpoint:
    """The cursor of the last event handled, in a file replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> str | None:
        """The saved cursor, or None to start from the beginning."""
        try:
            return self.path.read_text().strip() or None
        except FileNotFoundError:
            return None

    def save(self, cursor: str) -> None:
        """Record a cursor; a crash leaves either the old file or the new one."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(cursor)
        os.replace(tmp, self.path)


@dataclass
class Follower:
    """Streams the feed from the checkpoint on; reconnects with backoff."""

    base_url: str
    checkpoint: Checkpoint
    handle: Handler
    token: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    types: str | None = None
    stream: str | None = None
    max_backoff: float = 30.0

    async def run(self, session: aiohttp.ClientSession) -> None:
        """Follow for ever (until cancelled), reconnecting after failures."""
        backoff = 0.5
        while True:
            try:
                await self.follow_once(session)
                backoff = 0.5  # the stream ended cleanly (server restart): reconnect at once
                continue
            except (aiohttp.ClientError, TimeoutError) as exc:
                print(f"follow: {exc}; retrying in {backoff:.1f} s", file=sys.stderr)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff)

    async def follow_once(self, session: aiohttp.ClientSession) -> None:
        """One connection: from the checkpoint on, until the server ends the stream."""
        headers = {
            "Accept": "text/event-stream",
            "Authorization": f"Bearer {await self._token(session)}",
        }
        cursor = self.checkpoint.load()
        if cursor is not None:
            headers["Last-Event-ID"] = cursor
        filters = (("filter[type]", self.types), ("filter[stream]", self.stream))
        params = {k: v for k, v in filters if v}
        async with session.get(
            f"{self.base_url}/event-feed", params=params, headers=headers
        ) as resp:
            if resp.status == 401 and self.client_id:
                self.token = None  # expired: the next attempt fetches a fresh one
            resp.raise_for_status()
            async for frame in sse_frames(resp.content):
                if "id" in frame:
                    await self.handle(json.loads(frame["data"]))
                    self.checkpoint.save(frame["id"])  # only once it was handled

    async def _token(self, session: aiohttp.ClientSession) -> str:
        if self.token is None:
            if not (self.client_id and self.client_secret):
                raise SystemExit("follow: set FEED_TOKEN, or FEED_CLIENT_ID and FEED_CLIENT_SECRET")
            form = {"grant_type": "client_credentials", "scope": "events:read"}
            auth = aiohttp.BasicAuth(self.client_id, self.client_secret)
            async with session.post(f"{self.base_url}/token", data=form, auth=auth) as resp:
                resp.raise_for_status()
                self.token = (await resp.json())["access_token"]
        return self.token


async def sse_frames(content: aiohttp.StreamReader) -> AsyncIterator[dict[str, str]]:
    """Parse Server-Sent Events: one dict of fields per event (comments are skipped)."""
    frame: dict[str, str] = {}
    async for raw in content:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if frame:
                yield frame
            frame = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            frame[name] = value.removeprefix(" ")


async def print_event(item: dict[str, Any]) -> None:
    """The example handler: one JSON line per event on stdout."""
    print(json.dumps(item, separators=(",", ":"), ensure_ascii=False), flush=True)


def main(argv: list[str]) -> int:
    """Parse the command line and follow the feed until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m service follow", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the service's base URL")
    parser.add_argument("--checkpoint", default="var/feed.cursor", type=Path)
    parser.add_argument("--type", dest="types", help="only these event types (A,B)")
    parser.add_argument("--stream", help="only this stream (customer-DE--25)")
    args = parser.parse_args(argv)
    follower = Follower(
        base_url=args.url.rstrip("/"),
        checkpoint=Checkpoint(args.checkpoint),
        handle=print_event,
        token=os.environ.get("FEED_TOKEN") or None,
        client_id=os.environ.get("FEED_CLIENT_ID") or None,
        client_secret=os.environ.get("FEED_CLIENT_SECRET") or None,
        types=args.types,
        stream=args.stream,
    )
    args.checkpoint.parent.mkdir(parents=True, exist_ok=True)

    async def run() -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await follower.run(session)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0
