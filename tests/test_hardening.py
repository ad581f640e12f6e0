"""Server hardening: limits and timeouts, security headers, nothing internal in responses."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import io
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from service.app import AppOptions, init_app
from service.config import Settings
from service.endpoint import endpoint
from service.typedefs import POOL
from service.workers import Limits, bound_port, start_server
from tests.conftest import registration

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@endpoint(summary="Test only: a query the database rejects.")
async def bad_sql(request: web.Request) -> web.Response:
    """Runs SQL against a table that does not exist."""
    await request.app[POOL].fetchval("SELECT secret_column FROM no_such_table")
    raise AssertionError("unreachable")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A short body read timeout, so a trickling client is cut off quickly."""
    return dataclasses.replace(settings, body_read_seconds=0.3)


@pytest.fixture
def app(settings: Settings, app_options: AppOptions) -> web.Application:
    """The application with one deliberately broken route."""
    application = init_app(settings, app_options)
    application.router.add_get("/test-only/bad-sql", bad_sql)
    return application


@pytest.fixture
async def served(app: web.Application) -> AsyncIterator[int]:
    """The app behind the production server settings, with a short idle timeout."""
    runner = await start_server(app, "127.0.0.1", 0, Limits(idle_timeout=0.3, max_field_size=1024))
    yield bound_port(runner)
    await runner.cleanup()


async def _raw(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        # The bound only keeps a broken server from hanging the suite.
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/health/live", 200),
        ("GET", "/no/such/path", 404),
        ("GET", "/customers", 403),
        ("POST", "/customers", 415),
    ],
)
async def test_every_response_carries_the_security_headers(
    client: TestClient, method: str, path: str, status: int
) -> None:
    resp = await client.request(method, path, data=b"x" if method == "POST" else None)
    assert resp.status == status
    for name, value in SECURITY_HEADERS.items():
        assert resp.headers.get(name) == value, name


async def test_an_unexpected_database_error_answers_500_without_internals(
    client: TestClient,
) -> None:
    resp = await client.get("/test-only/bad-sql")
    assert resp.status == 500
    assert await resp.json() == {"errors": [{"status": 500, "detail": "Internal Server Error"}]}
    assert "X-Request-Id" in resp.headers


async def test_a_body_over_one_mebibyte_is_refused(client: TestClient) -> None:
    resp = await client.post(
        "/customers",
        data=io.BytesIO(b'{"data":"' + b"x" * (1024 * 1024) + b'"}'),
        headers={"Content-Type": "application/vnd.api+json"},
    )
    assert resp.status == 413
    assert (await resp.json())["errors"][0]["status"] == 413


async def test_a_client_that_never_finishes_its_headers_is_disconnected(served: int) -> None:
    answer = await _raw(served, b"GET /health/live HTTP/1.1\r\nHost: glue.test\r\n")
    assert answer == b""


async def test_an_idle_keep_alive_connection_is_closed(served: int) -> None:
    answer = await _raw(served, b"GET /health/live HTTP/1.1\r\nHost: glue.test\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200")
    assert answer.endswith(b'{"status":"ok"}')


async def _answer_to_a_body_cut_short(
    port: int, path: bytes, content_type: bytes, part: bytes
) -> tuple[bytes, bytes]:
    """(head, body) of the answer to a request that sends only `part` of its 100-byte body."""
    head = (
        b"POST " + path + b" HTTP/1.1\r\nHost: glue.test\r\n"
        b"Content-Type: " + content_type + b"\r\nContent-Length: 100\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + part)
        await writer.drain()
        # The server lingers for the rest of the body before it closes: read by length.
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        length = int(answer.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        return answer, await asyncio.wait_for(reader.readexactly(length), 10)
    finally:
        writer.close()


async def test_a_client_that_trickles_its_body_gets_408(served: int) -> None:
    head, _ = await _answer_to_a_body_cut_short(
        served, b"/customers", b"application/json", b'{"data":'
    )
    assert head.startswith(b"HTTP/1.1 408")


async def test_a_client_that_trickles_its_token_request_gets_an_oauth_408(served: int) -> None:
    head, body = await _answer_to_a_body_cut_short(
        served, b"/token", b"application/x-www-form-urlencoded", b"grant_type=pa"
    )
    assert head.startswith(b"HTTP/1.1 408")
    assert json.loads(body)["error"] == "invalid_request"


async def test_a_body_declared_over_one_mebibyte_is_refused_before_it_is_sent(
    served: int,
) -> None:
    head = (
        b"POST /customers HTTP/1.1\r\nHost: glue.test\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", served)
    try:
        writer.write(head)
        await writer.drain()
        status = await asyncio.wait_for(reader.readuntil(b"\r\n"), 10)
    finally:
        writer.close()
    # Waiting for the body would have ended in 408 once the read timeout passed.
    assert status.startswith(b"HTTP/1.1 413")


async def test_an_oversized_header_line_is_refused_without_a_traceback(served: int) -> None:
    huge = b"X-Big: " + b"a" * 4096
    answer = await _raw(served, b"GET /health/live HTTP/1.1\r\nHost: t\r\n" + huge + b"\r\n\r\n")
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.split(b" ")[1] in (b"400", b"431")
    assert b"Traceback" not in answer
    assert b'File "' not in answer


async def test_a_nul_character_in_a_path_is_a_client_error(client: TestClient) -> None:
    resp = await client.delete("/availability-notifications/ab%00cd")
    assert resp.status == 400
    assert (await resp.json())["errors"][0]["status"] == 400


async def test_a_nul_character_in_a_stored_attribute_is_a_client_error(
    client: TestClient,
) -> None:
    resp = await client.post("/customers", json=registration(firstName="Jo\u0000hn"))
    assert resp.status == 400
    assert await resp.json() == {
        "errors": [{"status": 400, "detail": "The request holds characters that cannot be stored."}]
    }


def _encoded_post(encoding: bytes, body: bytes) -> bytes:
    return (
        b"POST /customers HTTP/1.1\r\nHost: glue.test\r\nConnection: close\r\n"
        b"Content-Type: application/vnd.api+json\r\nContent-Encoding: " + encoding + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


async def test_a_body_that_is_not_the_gzip_it_claims_is_invalid_post_data(served: int) -> None:
    answer = await _raw(served, _encoded_post(b"gzip", b"{}"))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), head
    assert b"X-Request-Id" in head
    assert json.loads(body) == {"errors": [{"status": 400, "detail": "Post data is invalid."}]}


@pytest.mark.parametrize("encoding", [b"deflate", b"br"])
async def test_a_body_the_http_parser_cannot_decode_is_a_bad_request(
    served: int, encoding: bytes
) -> None:
    # The parser refuses these before any route runs: a plain 400, never a 500.
    answer = await _raw(served, _encoded_post(encoding, b"{}"))
    assert answer.split(b"\r\n", 1)[0].split(b" ")[1] == b"400"


async def test_a_gzip_body_is_decoded_before_it_is_read(client: TestClient) -> None:
    resp = await client.post(
        "/customers",
        data=gzip.compress(json.dumps(registration()).encode()),
        headers={"Content-Type": "application/vnd.api+json", "Content-Encoding": "gzip"},
    )
    assert resp.status == 201


async def test_a_gzip_body_over_one_mebibyte_once_decoded_is_refused(client: TestClient) -> None:
    bomb = gzip.compress(b'{"data":"' + b"0" * (8 * 1024 * 1024) + b'"}')
    assert len(bomb) < 64 * 1024
    resp = await client.post(
        "/customers",
        data=bomb,
        headers={"Content-Type": "application/vnd.api+json", "Content-Encoding": "gzip"},
    )
    assert resp.status == 413
