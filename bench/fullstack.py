"""Full-stack benchmark: the running service against a minimal baseline, over loopback HTTP.

`python -m bench fullstack [--seconds=4] [--rounds=3] [--concurrency=32] [--customers=100]
[--only=get,patch] [--no-scaling] [--profile]`

Starts PostgreSQL (DATABASE_URL's server, else an embedded throwaway cluster), a fresh
database, an SMTP sink, then `python -m service serve`; seeds confirmed customers with
tokens and an address each; drives each scenario from a separate load process
(bench/_load.py); then the same scenarios against bench/baseline.py; then WORKERS=2.
Prints req/s, p50 and p99 per scenario, and the service/baseline ratios.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg

from bench import _documents as docs
from service import db
from service.mail.sink import MailSink, links_in

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench-Secret-123"
READS = ("get", "addresses")
WRITES = ("patch",)
# patch-shared: every connection PATCHes any customer, so requests for one customer
# overlap and lose optimistic races; reported, without a target (see bench/_load.py).
SCENARIOS = ("get", "addresses", "patch", "patch-shared", "login", "register")
HASHING = ("login", "register")
# Reads >= 0.8, writes >= 0.7 (a login writes its refresh token).
TARGETS = {"get": 0.8, "addresses": 0.8, "patch": 0.7, "login": 0.7, "register": 0.7}


def _options(argv: list[str]) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "seconds": 4.0,
        "concurrency": 32,
        "customers": 100,
        "scaling": True,
        "profile": False,
        "only": None,
        "rounds": 3,
    }
    for arg in argv:
        name, _, value = arg.lstrip("-").partition("=")
        if name == "no-scaling":
            opts["scaling"] = False
        elif name == "profile":
            opts["profile"] = True
        elif name == "only":
            opts["only"] = tuple(value.split(","))
        elif name in ("seconds",):
            opts[name] = float(value)
        elif name in ("concurrency", "customers", "rounds"):
            opts[name] = int(value)
    return opts


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Process:
    """A server child process (the service or the baseline) on its own port."""

    def __init__(self, module: list[str], env: dict[str, str], log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.module = module
        self.env = {**env, "PORT": str(self.port)}
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> Process:
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", *self.module, cwd=ROOT, env=self.env, stdout=out, stderr=out
            )
        deadline = time.monotonic() + 60
        async with aiohttp.ClientSession() as session:
            while True:
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with session.get(f"{self.url}/health/ready") as r:
                        if r.status == 200:
                            return self
                if self.proc.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{self.module} did not start; see {self.log}")
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            await self.proc.wait()


async def _seed(url: str, sink: MailSink, count: int) -> list[dict[str, Any]]:
    """Confirmed customers with an access token and one address each."""
    limit = asyncio.Semaphore(8)

    async def one(session: aiohttp.ClientSession) -> dict[str, Any]:
        email = docs.unique_email()
        async with limit:
            async with session.post(
                f"{url}/customers", json=docs.registration(email, PASSWORD)
            ) as r:
                ref = (await r.json())["data"]["id"]
            mail = await sink.wait_for(lambda m: str(m["To"]) == email, timeout=120)
            key = links_in(mail)[0].split("token=", 1)[1]
            async with session.post(
                f"{url}/customer-confirmation", json=docs.confirmation(key)
            ) as r:
                assert r.status == 204, await r.text()
            async with session.post(f"{url}/access-tokens", json=docs.login(email, PASSWORD)) as r:
                token = (await r.json())["data"]["attributes"]["accessToken"]
            async with session.post(
                f"{url}/customers/{ref}/addresses",
                json=docs.address(),
                headers={"Authorization": f"Bearer {token}"},
            ) as r:
                await r.read()
        return {"ref": ref, "email": email, "password": PASSWORD, "token": token}

    async with aiohttp.ClientSession() as session:
        return list(await asyncio.gather(*(one(session) for _ in range(count))))


def _postgres_cpu_seconds() -> float:
    """User + system CPU of every PostgreSQL process on the machine (the benchmark's own
    database is the only busy one while a scenario runs)."""
    import psutil

    total = 0.0
    for proc in psutil.process_iter(["name", "cpu_times"]):
        times = proc.info["cpu_times"]
        if times is not None and (proc.info["name"] or "").startswith("postgres"):
            total += times.user + times.system
    return total


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a server process and its children (the workers)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


async def _drive(
    url: str, scenario: str, opts: dict[str, Any], customers: list[Any], pid: int | None = None
) -> dict:
    # Hashing scenarios are bound by the argon2 pool (one thread per core): more
    # connections than that only queue, and measure the queue.
    concurrency = opts["concurrency"] if scenario not in HASHING else min(opts["concurrency"], 4)
    config = {
        "url": url,
        "scenario": scenario,
        "seconds": opts["seconds"],
        "concurrency": concurrency,
        "customers": customers,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench._load",
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    before = _cpu_seconds(pid) if pid is not None else 0.0
    pg_before = _postgres_cpu_seconds()
    out, _ = await proc.communicate(json.dumps(config).encode())
    result = json.loads(out)
    # CPU per request of the server alone: steadier than req/s on a shared machine.
    # Everything shares the same cores, so PostgreSQL's and the load generator's
    # share tell how much of the machine is left for the server.
    if pid is not None and result["requests"]:
        result["cpu_ms"] = 1000 * (_cpu_seconds(pid) - before) / result["requests"]
        result["pg_cpu_ms"] = 1000 * (_postgres_cpu_seconds() - pg_before) / result["requests"]
    return result


async def _spy(pid: int, seconds: float, out: Path) -> None:
    """Sample the process with py-spy (collapsed stacks) while a scenario runs."""
    proc = await asyncio.create_subprocess_exec(
        shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
        "record",
        "--format",
        "raw",
        "-r",
        "250",
        "-d",
        str(int(seconds)),
        "-p",
        str(pid),
        "-o",
        str(out),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await proc.wait()


def _hot(path: Path, top: int = 18) -> str:
    """The functions with the most samples on their stack (inclusive), ours and libraries'."""
    if not path.exists():
        return "    (no profile: is py-spy installed?)"
    inclusive: dict[str, int] = {}
    leaf: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = [
            f.split(" (")[0] + " " + f.rsplit("/", 1)[-1].rstrip(")") for f in stack.split(";")
        ]
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + n
        leaf[frames[-1]] = leaf.get(frames[-1], 0) + n
    rows = sorted(inclusive.items(), key=lambda kv: -kv[1])
    rows = [r for r in rows if "asyncio" not in r[0] and "<module>" not in r[0]][:top]
    out = [f"    {100 * n / total:5.1f}%  {frame}" for frame, n in rows]
    out.append("    -- self time:")
    out += [
        f"    {100 * n / total:5.1f}%  {f}"
        for f, n in sorted(leaf.items(), key=lambda kv: -kv[1])[:8]
    ]
    return "\n".join(out)


def _line(name: str, r: dict[str, Any]) -> str:
    bad = {k: v for k, v in r["statuses"].items() if not k.startswith("2")}
    return (
        f"  {name:<22}{r['rps']:>9.0f} req/s   p50 {r['p50_ms']:>7.2f} ms   "
        f"p99 {r['p99_ms']:>7.2f} ms   CPU ms/req: server {r.get('cpu_ms', 0):>5.2f} "
        f"postgres {r.get('pg_cpu_ms', 0):>5.2f} load {r.get('load_cpu_ms', 0):>5.2f}   "
        f"n={r['requests']}{'  non-2xx ' + str(bad) if bad else ''}"
    )


async def _run(opts: dict[str, Any], server_dsn: str) -> None:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server_dsn)
    await admin.execute(f"CREATE DATABASE {name}")
    dsn = urlunsplit(urlsplit(server_dsn)._replace(path=f"/{name}"))
    conn = await db.connect(dsn)
    await db.apply_schema(conn)
    await conn.close()
    data = Path(tempfile.mkdtemp(prefix="glue-bench-"))
    sink = MailSink()
    smtp_port = await sink.start()
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "DATA_DIR": str(data),
        "HOST": "127.0.0.1",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "WORKERS": "1",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    results: dict[str, dict[str, Any]] = {}
    scenarios = opts["only"] or SCENARIOS
    servers: dict[str, Process] = {}
    try:
        # All targets run side by side and each scenario alternates between them round
        # by round, so whatever else the machine does weighs on every target alike.
        servers["service"] = await Process(["service", "serve"], env, data / "service.log").start()
        customers = await _seed(servers["service"].url, sink, opts["customers"])
        base_env = {**env, "BASELINE_SERVE": "1"}
        servers["baseline"] = await Process(["bench.baseline"], base_env, data / "base.log").start()
        if opts["scaling"]:
            two = {**env, "WORKERS": "2"}
            servers["service x2"] = await Process(
                ["service", "serve"], two, data / "service2.log"
            ).start()
        for scenario in scenarios:
            rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
            for _ in range(opts["rounds"]):
                for target, server in servers.items():
                    if target == "service x2" and scenario not in ("get", "patch"):
                        continue
                    assert server.proc is not None
                    drive = _drive(server.url, scenario, opts, customers, server.proc.pid)
                    if opts["profile"] and target == "service":
                        profile = data / f"profile-{scenario}.txt"
                        spy = _spy(server.proc.pid, opts["seconds"], profile)
                        result, _ = await asyncio.gather(drive, spy)
                    else:
                        result = await drive
                    rounds[target].append(result)
            for target, got in rounds.items():
                if got:
                    # The median round by throughput, with its own latencies.
                    got.sort(key=lambda r: r["rps"])
                    results[f"{target} {scenario}"] = got[len(got) // 2]
                    print(_line(f"{target} {scenario}", got[len(got) // 2]), flush=True)
            if opts["profile"]:
                print(_hot(data / f"profile-{scenario}.txt"), flush=True)
    finally:
        for server in servers.values():
            await server.stop()
        await sink.stop()
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()
    print("  service / baseline (req/s):")
    for scenario in scenarios:
        ratio = results[f"service {scenario}"]["rps"] / max(
            results[f"baseline {scenario}"]["rps"], 1e-9
        )
        target = TARGETS.get(scenario)
        verdict = (
            ""
            if target is None
            else f"   target ≥ {target}: {'ok' if ratio >= target else 'BELOW'}"
        )
        cpu = results[f"baseline {scenario}"].get("cpu_ms", 0) / max(
            results[f"service {scenario}"].get("cpu_ms", 0), 1e-9
        )
        print(f"  {scenario:<22}{ratio:>9.2f}{verdict}   (by server CPU per request: {cpu:.2f})")
    if opts["scaling"]:
        print("  WORKERS=2 / WORKERS=1 (req/s):")
        for scenario in [s for s in ("get", "patch") if s in scenarios]:
            factor = results[f"service x2 {scenario}"]["rps"] / max(
                results[f"service {scenario}"]["rps"], 1e-9
            )
            print(f"  {scenario:<22}{factor:>9.2f}")


def main(argv: list[str]) -> None:
    """Run the benchmark and print its figures."""
    opts = _options(argv)
    server = None
    dsn = os.environ.get("DATABASE_URL")
    if dsn is None:
        from service.embedded import start_embedded

        server, dsn = start_embedded(
            Path(tempfile.mkdtemp(prefix="glue-bench-pg-")), throwaway=True
        )
    print(
        f"  {opts['customers']} customers, {opts['concurrency']} connections, "
        f"{opts['seconds']:.0f} s per scenario, load from a separate process; cores: {os.cpu_count()}",
        flush=True,
    )
    try:
        asyncio.run(_run(opts, dsn))
    finally:
        if server is not None:
            from service.embedded import stop_embedded

            stop_embedded(server)
