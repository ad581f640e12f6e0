"""Serving the API: one process, or WORKERS=N processes sharing one port.

With N > 1 this process becomes a supervisor: it starts the local mail sink (when
no SMTP server is configured), then N workers (`python -m service.workers`) that
each bind the port with SO_REUSEPORT so the kernel spreads connections over them.
Subscribers run once across the workers thanks to their advisory locks. SIGTERM
(or SIGINT) is forwarded; every worker stops accepting, finishes its in-flight
requests, stops its subscribers and exits. A worker that dies is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from service import keys
from service.app import AppOptions, init_app
from service.config import Settings
from service.mail.mailer import SmtpTarget
from service.mail.sink import MailSink
from service.metrics import MULTIPROC_ENV

log = logging.getLogger("glue.workers")
RESPAWN_PAUSE = 1.0


@dataclass(frozen=True)
class Limits:
    """HTTP server hardening. The idle timeout also bounds how long a client may take
    to send a request's headers (aiohttp closes a connection still waiting for them)."""

    idle_timeout: float = 15.0
    drain_seconds: float = 30.0
    max_line_size: int = 8190
    max_field_size: int = 8190
    max_headers: int = 64
    backlog: int = 1024


async def start_server(
    app: web.Application,
    host: str,
    port: int,
    limits: Limits = Limits(),
    *,
    reuse_port: bool = False,
) -> web.AppRunner:
    """Serve `app` on host:port (port 0 picks one: see `bound_port`); returns the runner."""
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=limits.drain_seconds,
        keepalive_timeout=limits.idle_timeout,
        max_line_size=limits.max_line_size,
        max_field_size=limits.max_field_size,
        max_headers=limits.max_headers,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port, backlog=limits.backlog)
    await site.start()
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The port a started runner listens on."""
    return int(runner.addresses[0][1])


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _settle_garbage_collector() -> None:
    """Keep full collections short and rare while serving.

    Everything built at startup (modules, pycountry's tables, schemas, the app) lives
    as long as the process: frozen, a full collection no longer walks it. Without
    this, bench fullstack saw full collections of up to 37 ms stall every request in
    flight (PATCH p99 40-50 ms against p50 13 ms). Young objects are mostly freed by
    reference counting anyway, so a higher first threshold saves work too.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


async def run_worker(
    settings: Settings, dsn: str, *, reuse_port: bool, limits: Limits = Limits()
) -> None:
    """Serve until SIGTERM/SIGINT, then drain in-flight requests and stop cleanly."""
    stop = _stop_event()
    options = AppOptions(dsn=dsn)
    sink: MailSink | None = None
    if settings.smtp_host is None:
        sink = MailSink(directory=settings.data_dir / "mail")
        port = await sink.start("127.0.0.1", settings.smtp_port)
        log.info("local mail sink on 127.0.0.1:%d writing %s", port, settings.data_dir / "mail")
        options.smtp = SmtpTarget(host="127.0.0.1", port=port)
    runner = await start_server(
        init_app(settings, options), settings.host, settings.port, limits, reuse_port=reuse_port
    )
    _settle_garbage_collector()
    log.info("serving on http://%s:%d", settings.host, bound_port(runner))
    await stop.wait()
    log.info("stopping: draining in-flight requests")
    # Stops listening, waits for running handlers (up to drain_seconds), then runs
    # the app's cleanup: subscribers release their locks, the pool closes.
    await runner.cleanup()
    if sink is not None:
        await sink.stop()
    log.info("stopped")


def _metrics_dir() -> tuple[Path, bool]:
    """The shared folder of the workers' metrics (emptied), and whether we made it."""
    given = os.environ.get(MULTIPROC_ENV)
    path = Path(given or tempfile.mkdtemp(prefix="glue-metrics-"))
    for stale in path.glob("*.db"):
        stale.unlink()
    return path, given is None


async def supervise(
    settings: Settings, dsn: str, metrics_dir: Path, limits: Limits = Limits()
) -> int:
    """Run `settings.workers` worker processes on one port until SIGTERM/SIGINT."""
    stop = _stop_event()
    env = dict(os.environ, DATABASE_URL=dsn, WORKERS="1")
    sink: MailSink | None = None
    if settings.smtp_host is None:
        # One sink for all workers, here, so they do not compete for its port.
        sink = MailSink(directory=settings.data_dir / "mail")
        port = await sink.start("127.0.0.1", settings.smtp_port)
        log.info("local mail sink on 127.0.0.1:%d writing %s", port, settings.data_dir / "mail")
        env.update(SMTP_HOST="127.0.0.1", SMTP_PORT=str(port))
    env[MULTIPROC_ENV] = str(metrics_dir)

    async def spawn() -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "service.workers", env=env
        )
        log.info("worker started", extra={"fields": {"worker": proc.pid}})
        return proc

    procs = [await spawn() for _ in range(settings.workers)]
    try:
        await _watch(procs, spawn, stop, metrics_dir)
        log.info("stopping %d workers", len(procs))
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(limits.drain_seconds + 10):
                codes = [await proc.wait() for proc in procs]
        except TimeoutError:
            log.error("workers did not stop in time; killing them")
            for proc in procs:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            codes = [await proc.wait() for proc in procs]
    finally:
        if sink is not None:
            await sink.stop()
    # A worker stopped before it installed its handlers was not serving yet: also clean.
    return 0 if all(code in (0, -signal.SIGTERM) for code in codes) else 1


async def _watch(
    procs: list[asyncio.subprocess.Process],
    spawn: Callable[[], Awaitable[asyncio.subprocess.Process]],
    stop: asyncio.Event,
    metrics_dir: Path,
) -> None:
    """Replace workers that die until asked to stop."""
    from prometheus_client.multiprocess import mark_process_dead

    stopping = asyncio.ensure_future(stop.wait())
    try:
        while True:
            waits = {asyncio.ensure_future(p.wait()): i for i, p in enumerate(procs)}
            done, _ = await asyncio.wait({stopping, *waits}, return_when=asyncio.FIRST_COMPLETED)
            for fut in waits:
                if fut not in done:
                    fut.cancel()
            if stopping in done:
                return
            for fut in done:
                i = waits[fut]
                dead = procs[i]
                log.error(
                    "worker died; starting another",
                    extra={"fields": {"worker": dead.pid, "code": dead.returncode}},
                )
                mark_process_dead(dead.pid, str(metrics_dir))
                # A worker that cannot start must not spin: pause before the next one.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(stopping), RESPAWN_PAUSE)
                if stopping.done():
                    return
                procs[i] = await spawn()
    finally:
        stopping.cancel()


def _port_is_free(host: str, port: int) -> bool:
    """Whether nobody listens on host:port. Workers bind with SO_REUSEPORT, which would
    let them share a port with another instance of the service and split its traffic
    without a word; a plain bind is refused instead."""
    if port == 0:
        return True
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def serve(settings: Settings, dsn: str) -> int:
    """Serve with `settings.workers` processes (1: this one); 1 when a port is taken."""
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    # Generate missing keys once, before any worker could race to write them.
    keys.master_key(settings)
    keys.signing_key_pem(settings)
    try:
        if settings.workers <= 1:
            asyncio.run(run_worker(settings, dsn, reuse_port=False))
            return 0
        if not _port_is_free(settings.host, settings.port):
            raise OSError(errno.EADDRINUSE, f"{settings.host}:{settings.port} is in use")
        metrics_dir, own = _metrics_dir()
        try:
            return asyncio.run(supervise(settings, dsn, metrics_dir))
        finally:
            if own:
                shutil.rmtree(metrics_dir, ignore_errors=True)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        # A message, not a traceback: the usual cause is another server (or another
        # copy of this one) already on PORT, or on SMTP_PORT for the local mail sink.
        log.error("cannot listen, address already in use: %s", exc.strerror or exc)
        return 1


def main() -> int:
    """Entry of one worker process started by the supervisor."""
    from service.logs import setup_logging

    settings = Settings.from_env()
    setup_logging(settings.log_level)
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    if settings.database_url is None:
        raise SystemExit("a worker needs DATABASE_URL (the supervisor sets it)")
    asyncio.run(run_worker(settings, settings.database_url, reuse_port=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
