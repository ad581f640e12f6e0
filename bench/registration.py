"""Registrations/s through HTTP beside the raw argon2id rate, and GET p99 under that load.

Starts the real service (`python -m service serve`) on a throwaway DATA_DIR and a
free port (embedded PostgreSQL unless DATABASE_URL is set), then alternates two
kinds of window so that whatever else runs on the machine weighs on both alike:

- raw: the service's own PasswordHasher (same parameters, threads and priority),
  called directly in this process while the service idles;
- load: 8 clients (--clients) registering as fast as they are answered; the ratio
  comes from these windows;
- probed: the same load while one more client reads GET /customers/{ref} of a
  confirmed customer every 20 ms, timing each read. The probe is a ninth client with
  work of its own (about one read per registration on a small machine), so it gets
  windows of its own instead of weighing on the ratio; its registrations/s are
  printed too;
- floor: the same 8 clients against bench/baseline.py on the same PostgreSQL, the
  least an aiohttp service can do per registration (the same hash, one INSERT and one
  UPSERT; no validation, no events, no mail). Its ratio shows what this machine
  allows any service to reach.

Targets: registrations/s >= 0.9 x the raw hash rate; GET p99 < 50 ms under load.
It also prints the CPU each component spent per registration during the load
windows (Linux /proc; PostgreSQL only when embedded), which is where to look first
when the ratio falls short: everything shares the same cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bench import _documents as docs
from bench._http import Connection, ProtocolError
from bench._relay import Relay
from service.auth.passwords import PasswordHasher
from service.config import Settings
from service.jsonapi import CONTENT_TYPE
from service.mail.sink import links_in

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "Bench-Password-1"
RATIO_TARGET = 0.9
P99_TARGET_MS = 50.0


@dataclass
class Tally:
    """What the windows measured, summed over the rounds."""

    hashes: int = 0
    hash_seconds: float = 0.0
    registered: int = 0
    probed_registered: int = 0
    probed_seconds: float = 0.0
    floor_registered: int = 0
    floor_seconds: float = 0.0
    failed: dict[int, int] = field(default_factory=dict)
    load_seconds: float = 0.0
    get_ms: list[float] = field(default_factory=list)
    idle_get_ms: list[float] = field(default_factory=list)
    # CPU seconds per component spent during the load windows.
    cpu: dict[str, float] = field(default_factory=dict)


_HZ = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(stat_path: str) -> float:
    try:
        with open(stat_path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _HZ


def _cpu_snapshot(service_pid: int, pg_dir: Path) -> dict[str, float]:
    """CPU seconds so far: the service's event-loop thread, its other threads (argon2),
    PostgreSQL (postmaster and backends) and this benchmark process (clients, mail relay)."""
    snap = {"event loop": 0.0, "service threads": 0.0, "bench client + relay": 0.0}
    for task in Path(f"/proc/{service_pid}/task").glob("*"):
        key = "event loop" if task.name == str(service_pid) else "service threads"
        snap[key] += _cpu_seconds(f"{task}/stat")
    with contextlib.suppress(OSError, ValueError, IndexError):
        postmaster = int((pg_dir / "postmaster.pid").read_text().split()[0])
        snap["postgres"] = 0.0
        for proc in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError, IndexError):
                parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if parent == postmaster or proc.name == str(postmaster):
                    snap["postgres"] += _cpu_seconds(f"{proc}/stat")
    snap["bench client + relay"] = _cpu_seconds(f"/proc/{os.getpid()}/stat")
    return snap


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _service(
    env: dict[str, str], log_path: Path, module: str = "service"
) -> Iterator[subprocess.Popen[bytes]]:
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *(["serve"] if module == "service" else [])],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def _wait_ready(session: aiohttp.ClientSession, base: str, proc: Any) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"service exited with {proc.returncode}")
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(f"{base}/health/ready") as resp:
                if resp.status == 200:
                    return
        await asyncio.sleep(0.2)
    raise RuntimeError("service did not become ready")


async def _confirmed_customer(
    session: aiohttp.ClientSession, base: str, relay: Relay
) -> tuple[str, str]:
    """(reference, access token) of a customer confirmed through the mailed link."""
    email = docs.unique_email()
    async with session.post(f"{base}/customers", json=docs.registration(email, PASSWORD)) as resp:
        assert resp.status == 201, await resp.text()
        ref = (await resp.json())["data"]["id"]
    msg = await relay.mail_to(email)
    key = links_in(msg)[0].split("token=", 1)[1]
    async with session.post(f"{base}/customer-confirmation", json=docs.confirmation(key)) as resp:
        assert resp.status == 204, await resp.text()
    async with session.post(f"{base}/access-tokens", json=docs.login(email, PASSWORD)) as resp:
        assert resp.status == 201, await resp.text()
        token = (await resp.json())["data"]["attributes"]["accessToken"]
    return ref, token


async def _raw_hash_window(settings: Settings, seconds: float) -> int:
    """Hashes the service's own hasher (same parameters, threads and priority) completes
    in `seconds`, called directly instead of through HTTP."""
    hasher = PasswordHasher(
        settings.argon2_memory_kib, settings.argon2_time_cost, settings.hash_workers
    )
    end = time.perf_counter() + seconds
    count = 0

    async def work() -> None:
        nonlocal count
        while time.perf_counter() < end:
            await hasher.hash(PASSWORD)
            count += 1

    try:
        await asyncio.gather(*(work() for _ in range(hasher.capacity)))
    finally:
        hasher.close()
    return count


async def _probe(
    session: aiohttp.ClientSession, url: str, token: str, until: float, out: list[float]
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    while time.perf_counter() < until:
        started = time.perf_counter()
        async with session.get(url, headers=headers) as resp:
            await resp.read()
            assert resp.status == 200, resp.status
        out.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.02)


async def _register_until(base: str, until: float, tally: Tally, counter: str) -> None:
    """Register customers until `until`, counting each 201 in `tally.<counter>`."""
    url = urlsplit(base)
    conn = Connection(url.hostname or "127.0.0.1", url.port or 80)
    try:
        while time.perf_counter() < until:
            body = json.dumps(docs.registration(docs.unique_email(), PASSWORD)).encode()
            try:
                status = await conn.request("POST", "/customers", body, CONTENT_TYPE)
            except (OSError, ProtocolError):
                status = 0  # counted below; the next request opens a new connection
            if status == 201:
                setattr(tally, counter, getattr(tally, counter) + 1)
            else:
                tally.failed[status] = tally.failed.get(status, 0) + 1
    finally:
        conn.close()


async def _load_window(
    session: aiohttp.ClientSession,
    base: str,
    seconds: float,
    clients: int,
    tally: Tally,
    counter: str,
    probe: tuple[str, str] | None = None,
) -> float:
    """`clients` registering for `seconds` (plus the probe, when given); real seconds taken."""
    started = time.perf_counter()
    until = started + seconds
    work = [_register_until(base, until, tally, counter) for _ in range(clients)]
    if probe is not None:
        work.append(_probe(session, probe[0], probe[1], until, tally.get_ms))
    await asyncio.gather(*work)
    # The clients finish their last request after `until`: count real time.
    return time.perf_counter() - started


def _embedded_dsn(pg_dir: Path) -> str:
    """The DSN of the service's embedded server, from its postmaster.pid."""
    lines = (pg_dir / "postmaster.pid").read_text().splitlines()
    port, socket_dir = lines[3].strip(), lines[4].strip()
    return f"postgresql://postgres@/postgres?host={socket_dir}&port={port}"


async def _run(opts: argparse.Namespace) -> Tally:
    tmp = Path(tempfile.mkdtemp(prefix="glue-bench-"))
    port = _free_port()
    # The mail relay is this process's (bench/_relay.py), as in production it is
    # another machine's: the service composes and sends every mail over SMTP; what
    # the relay does with it is not the service's work.
    relay = Relay()
    relay_port = await relay.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMTP_")}
    env.update(
        DATA_DIR=str(tmp / "data"),
        HOST="127.0.0.1",
        PORT=str(port),
        LOG_LEVEL="WARNING",
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(relay_port),
    )
    settings = Settings.from_env(env)
    base = f"http://127.0.0.1:{port}"
    pg_dir = tmp / "data" / "pg"
    tally = Tally()
    print(
        f"argon2id m={settings.argon2_memory_kib} KiB t={settings.argon2_time_cost} p=1, "
        f"{settings.hash_workers} hash threads; {opts.clients} clients; "
        f"{opts.rounds} rounds of {opts.seconds / 2:.0f} s raw + {opts.seconds:.0f} s load "
        f"+ {opts.seconds / 2:.0f} s probed load + {opts.seconds / 2:.0f} s floor",
        flush=True,
    )
    try:
        async with contextlib.AsyncExitStack() as stack:
            proc = stack.enter_context(_service(env, tmp / "service.log"))
            connector = aiohttp.TCPConnector(limit=opts.clients + 2)
            session = await stack.enter_async_context(aiohttp.ClientSession(connector=connector))
            await _wait_ready(session, base, proc)
            # The floor runs beside the service, on the same PostgreSQL, idle but for its
            # own windows.
            floor_port = _free_port()
            floor_env = {
                **env,
                "BASELINE_SERVE": "1",
                "PORT": str(floor_port),
                "DATABASE_URL": env.get("DATABASE_URL") or _embedded_dsn(pg_dir),
            }
            floor = stack.enter_context(_service(floor_env, tmp / "baseline.log", "bench.baseline"))
            floor_base = f"http://127.0.0.1:{floor_port}"
            await _wait_ready(session, floor_base, floor)
            ref, token = await _confirmed_customer(session, base, relay)
            url = f"{base}/customers/{ref}"
            await _probe(session, url, token, time.perf_counter() + 2, tally.idle_get_ms)
            for _ in range(opts.rounds):
                raw_seconds = opts.seconds / 2
                tally.hashes += await _raw_hash_window(settings, raw_seconds)
                tally.hash_seconds += raw_seconds
                before = _cpu_snapshot(proc.pid, pg_dir)
                tally.load_seconds += await _load_window(
                    session, base, opts.seconds, opts.clients, tally, "registered"
                )
                after = _cpu_snapshot(proc.pid, pg_dir)
                for key, value in after.items():
                    tally.cpu[key] = tally.cpu.get(key, 0.0) + value - before.get(key, 0.0)
                tally.probed_seconds += await _load_window(
                    session,
                    base,
                    opts.seconds / 2,
                    opts.clients,
                    tally,
                    "probed_registered",
                    probe=(url, token),
                )
                tally.floor_seconds += await _load_window(
                    session, floor_base, opts.seconds / 2, opts.clients, tally, "floor_registered"
                )
    except BaseException:
        print((tmp / "service.log").read_text(errors="replace")[-4000:], file=sys.stderr)
        raise
    finally:
        await relay.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return tally


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main(argv: list[str]) -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(prog="python -m bench registration")
    parser.add_argument("--seconds", type=float, default=10.0, help="load window length")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    opts = parser.parse_args(argv)
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    tally = asyncio.run(_run(opts))
    raw = tally.hashes / tally.hash_seconds
    rate = tally.registered / tally.load_seconds
    ratio = rate / raw if raw else 0.0
    p99 = _percentile(tally.get_ms, 99)
    print(f"raw argon2id hash rate:      {raw:7.1f} hashes/s")
    print(
        f"registrations through HTTP:  {rate:7.1f} /s  ({tally.registered} in "
        f"{tally.load_seconds:.1f} s; other statuses: {tally.failed or 'none'})"
    )
    print(
        f"ratio:                       {ratio:7.2f} x   "
        f"(target >= {RATIO_TARGET}: {'ok' if ratio >= RATIO_TARGET else 'BELOW'})"
    )
    per = {k: v / max(1, tally.registered) * 1000 for k, v in tally.cpu.items()}
    print(
        "CPU ms per registration:     "
        + ", ".join(f"{k} {v:.1f}" for k, v in per.items())
        + f"  (machine: {os.cpu_count()} cores, {1000 / rate * (os.cpu_count() or 1):.1f} "
        "core-ms per registration available)"
    )
    floor = tally.floor_registered / tally.floor_seconds if tally.floor_seconds else 0.0
    print(
        f"floor (bench/baseline.py):   {floor:7.1f} /s  = {floor / raw if raw else 0:.2f} x raw "
        f"(hash + INSERT + UPSERT, no mail: what this machine allows any service)"
    )
    print(f"service / floor:             {rate / floor if floor else 0:7.2f}")
    print(
        f"GET /customers/{{ref}} idle:   p50 {statistics.median(tally.idle_get_ms):6.1f} ms  "
        f"p99 {_percentile(tally.idle_get_ms, 99):6.1f} ms  (n={len(tally.idle_get_ms)})"
    )
    probed = tally.probed_registered / tally.probed_seconds if tally.probed_seconds else 0.0
    print(
        f"with the GET probe beside:   {probed:7.1f} /s  = {probed / raw if raw else 0:.2f} x raw "
        "(a ninth client reading every 20 ms)"
    )
    print(
        f"GET /customers/{{ref}} loaded: p50 {statistics.median(tally.get_ms):6.1f} ms  "
        f"p99 {p99:6.1f} ms  max {max(tally.get_ms):6.1f} ms  (n={len(tally.get_ms)}; "
        f"target p99 < {P99_TARGET_MS:.0f} ms: {'ok' if p99 < P99_TARGET_MS else 'ABOVE'})"
    )
