"""Real service processes for the process-level tests: `python -m service serve` as a child."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from service.mail.sink import MailSink
from tests.conftest import PASSWORD, confirmation_key, registration, unique_email

ROOT = Path(__file__).resolve().parent.parent
JSONAPI = "application/vnd.api+json"


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def eventually(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 30.0, what: str = "condition"
) -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds.

    For waiting on other processes, which cannot signal us: never a fixed sleep.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = await check()
        except (aiohttp.ClientError, OSError, TimeoutError):
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


class Service:
    """`python -m service serve` on its own port, against a given database and SMTP port."""

    def __init__(
        self,
        dsn: str,
        smtp_port: int,
        data_dir: Path,
        *,
        workers: int = 1,
        port: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / f"service-{self.port}-{uuid.uuid4().hex[:6]}.log"
        self.env = {
            **os.environ,
            "DATABASE_URL": dsn,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "WORKERS": str(workers),
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(smtp_port),
            "DATA_DIR": str(data_dir),
            "ARGON2_MEMORY_KIB": "1024",
            "ARGON2_TIME_COST": "1",
            "PUBLIC_BASE_URL": "http://glue.test",
            "STOREFRONT_URL": "http://shop.test",
            "LOG_LEVEL": "INFO",
            **(env or {}),
        }
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, *, ready: bool = True) -> Service:
        """Start the process (and wait until it answers /health/ready)."""
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "service",
                "serve",
                cwd=ROOT,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        if ready:
            await self.wait_ready()
        return self

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Poll /health/ready until it answers 200."""

        async def ready() -> bool:
            assert self.proc is not None
            if self.proc.returncode is not None:
                raise AssertionError(f"service exited early:\n{self.log_text()[-3000:]}")
            async with aiohttp.ClientSession() as s, s.get(f"{self.url}/health/ready") as r:
                return r.status == 200

        await eventually(ready, timeout=timeout, what=f"{self.url} to be ready")

    @property
    def pid(self) -> int:
        """The (supervisor's, with several workers) process id."""
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        """kill -9."""
        assert self.proc is not None
        self.proc.kill()

    async def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait for the exit status (kill -9 after `timeout`)."""
        if self.proc is None or self.proc.returncode is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout):
                return await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise AssertionError("service did not stop on SIGTERM") from None

    async def wait(self) -> int:
        """Wait for the process to end."""
        assert self.proc is not None
        return await self.proc.wait()

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far."""
        out = []
        for line in self.log_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def log_text(self) -> str:
        """Everything the process wrote to stdout and stderr."""
        return self.log_path.read_text() if self.log_path.exists() else ""


async def scrape(session: aiohttp.ClientSession, url: str) -> str:
    """The text of /metrics."""
    async with session.get(f"{url}/metrics") as r:
        assert r.status == 200
        return await r.text()


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of one metric matching the labels (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


async def register_over_http(
    session: aiohttp.ClientSession, url: str, email: str | None = None
) -> tuple[int, dict[str, Any] | None, str]:
    """POST /customers; (status, document or None, email)."""
    email = email or unique_email("proc")
    async with session.post(f"{url}/customers", json=registration(email=email)) as r:
        doc = await r.json(content_type=None) if r.status != 204 else None
        return r.status, doc, email


async def login_over_http(session: aiohttp.ClientSession, url: str, email: str) -> str:
    """An access token for a confirmed customer."""
    body = {
        "data": {"type": "access-tokens", "attributes": {"username": email, "password": PASSWORD}}
    }
    async with session.post(f"{url}/access-tokens", json=body) as r:
        assert r.status == 201, await r.text()
        return (await r.json())["data"]["attributes"]["accessToken"]


async def customer_over_http(
    session: aiohttp.ClientSession, url: str, smtp: MailSink
) -> tuple[str, str, str]:
    """(reference, email, access token) of a fresh, confirmed, logged-in customer."""
    status, doc, email = await register_over_http(session, url)
    assert status == 201 and doc is not None
    key = await confirmation_key(smtp, email)
    body = {"data": {"type": "customer-confirmation", "attributes": {"registrationKey": key}}}
    async with session.post(f"{url}/customer-confirmation", json=body) as r:
        assert r.status == 204
    return doc["data"]["id"], email, await login_over_http(session, url, email)
