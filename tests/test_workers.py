"""WORKERS=N: several service processes on one port, subscribers once, clean SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from service.mail.sink import MailSink
from tests.procs import Service, eventually, metric, register_over_http, scrape

pytestmark = pytest.mark.process


def _access_pids(service: Service, path: str) -> set[int]:
    return {
        line["pid"]
        for line in service.log_lines()
        if line.get("logger") == "glue.access" and f" {path} " in line.get("msg", "")
    }


async def _until_both_serve(session: aiohttp.ClientSession, service: Service) -> None:
    """Ask /health/live over fresh connections until both workers have answered.

    The kernel spreads connections, not requests, and the second worker may still be
    starting when the first answers, so this keeps asking, bounded by `eventually`.
    """

    async def both_served() -> bool:
        for _ in range(10):
            async with session.get(f"{service.url}/health/live") as r:
                assert r.status == 200
        return len(_access_pids(service, "/health/live")) == 2

    await eventually(both_served, what="both workers to serve /health/live")


def _worker_pids(service: Service) -> list[int]:
    return [line["worker"] for line in service.log_lines() if line.get("msg") == "worker started"]


async def test_two_workers_serve_the_same_port(
    database: str, smtp: MailSink, data_dir: Path
) -> None:
    service = await Service(database, smtp.port, data_dir, workers=2).start()
    try:
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            await _until_both_serve(session, service)
        assert len(_access_pids(service, "/health/live")) == 2
    finally:
        assert await service.stop() == 0


async def test_the_mailer_runs_in_one_worker_only(
    database: str, smtp: MailSink, data_dir: Path
) -> None:
    service = await Service(database, smtp.port, data_dir, workers=2).start()
    try:
        async with aiohttp.ClientSession() as session:
            emails = []
            for _ in range(4):
                status, _, email = await register_over_http(session, service.url)
                assert status == 201
                emails.append(email)
            for email in emails:
                await smtp.wait_for(lambda m, e=email: str(m["To"]) == e)

            async def caught_up() -> bool:
                text = await scrape(session, service.url)
                return metric(text, "glue_subscriber_lag_events", subscriber="mailer") == 0

            await eventually(caught_up, what="the mailer to catch up")

            async def one_leader() -> bool:
                # Each worker publishes its leadership every couple of seconds.
                text = await scrape(session, service.url)
                return metric(text, "glue_subscriber_leader", subscriber="mailer") == 1

            await eventually(one_leader, what="one mailer leader across the workers")
        assert [len(smtp.to(e)) for e in emails] == [1, 1, 1, 1]
    finally:
        assert await service.stop() == 0


async def test_metrics_add_up_every_workers_requests(
    database: str, smtp: MailSink, data_dir: Path
) -> None:
    service = await Service(database, smtp.port, data_dir, workers=2).start()
    try:
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            await _until_both_serve(session, service)
            for _ in range(20):
                async with session.get(f"{service.url}/openapi.json") as r:
                    assert r.status == 200
            text = await scrape(session, service.url)
        assert len(_access_pids(service, "/openapi.json")) == 2
        count = metric(
            text, "glue_http_request_duration_seconds_count", route="/openapi.json", status="200"
        )
        assert count == 20
    finally:
        assert await service.stop() == 0


async def test_sigterm_lets_in_flight_requests_finish(
    database: str, smtp: MailSink, data_dir: Path
) -> None:
    # Expensive hashing keeps registrations in flight long enough to stop under them.
    slow = {"ARGON2_MEMORY_KIB": "65536", "ARGON2_TIME_COST": "6"}
    service = await Service(database, smtp.port, data_dir, workers=2, env=slow).start()
    async with aiohttp.ClientSession() as session:
        burst = [asyncio.ensure_future(register_over_http(session, service.url)) for _ in range(4)]

        async def all_in_flight() -> bool:
            text = await scrape(session, service.url)
            return metric(text, "glue_http_requests_in_flight") >= 5  # + this scrape

        await eventually(all_in_flight, what="the burst to be in flight")
        service.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        results = await asyncio.gather(*burst)
    assert [status for status, _, _ in results] == [201] * 4
    assert await service.wait() == 0
    conn = await asyncpg.connect(database)
    try:
        refs = [doc["data"]["id"] for _, doc, _ in results if doc]
        found = await conn.fetchval(
            "SELECT count(*) FROM customers WHERE customer_reference = ANY($1)", refs
        )
    finally:
        await conn.close()
    assert found == 4
    stopped = [line for line in service.log_lines() if line.get("msg") == "stopped"]
    assert len(stopped) == 2


async def test_a_worker_that_dies_is_replaced(
    database: str, smtp: MailSink, data_dir: Path
) -> None:
    service = await Service(database, smtp.port, data_dir, workers=2).start()
    try:

        async def serving(count: int) -> list[int]:
            pids = _worker_pids(service)
            up = {m["pid"] for m in service.log_lines() if m.get("msg", "").startswith("serving")}
            return pids if len(pids) == count and up >= set(pids[-2:]) else []

        first = await eventually(lambda: serving(2), what="both workers to serve")
        os.kill(first[0], signal.SIGKILL)
        now = await eventually(lambda: serving(3), what="a replacement worker to serve")
        assert first[0] not in now[-2:]
    finally:
        assert await service.stop() == 0


@pytest.mark.parametrize("workers", [1, 2])
async def test_a_taken_port_stops_the_service_with_a_message_not_a_traceback(
    database: str, smtp: MailSink, data_dir: Path, workers: int
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        service = await Service(database, smtp.port, data_dir, workers=workers, port=port).start(
            ready=False
        )
        async with asyncio.timeout(30):
            code = await service.wait()
    assert code == 1
    assert "address already in use" in service.log_text()
    assert "Traceback" not in service.log_text()


async def test_a_second_service_with_workers_does_not_share_the_first_ones_port(
    database: str, smtp: MailSink, data_dir: Path
) -> None:
    first = await Service(database, smtp.port, data_dir, workers=2).start()
    try:
        second = await Service(database, smtp.port, data_dir, workers=2, port=first.port).start(
            ready=False
        )
        async with asyncio.timeout(30):
            assert await second.wait() == 1
    finally:
        assert await first.stop() == 0
