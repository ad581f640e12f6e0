"""GET /health/live and /health/ready, and framework-level error documents."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from service.db import SCHEMA_VERSION
from tests.conftest import JSONAPI


async def test_live_answers_ok(client: TestClient) -> None:
    resp = await client.get("/health/live")
    assert resp.status == 200
    assert resp.content_type == JSONAPI


async def test_ready_reports_the_schema_version(client: TestClient) -> None:
    resp = await client.get("/health/ready")
    assert resp.status == 200
    assert (await resp.json())["schemaVersion"] == SCHEMA_VERSION == 2


async def test_unknown_path_is_a_jsonapi_404(client: TestClient) -> None:
    resp = await client.get("/nope")
    assert resp.status == 404
    assert resp.content_type == JSONAPI
    assert await resp.json() == {"errors": [{"status": 404, "detail": "Not Found"}]}


async def test_unsupported_method_is_a_404(client: TestClient) -> None:
    resp = await client.put("/health/live")
    assert resp.status == 404


async def test_request_id_is_echoed(client: TestClient) -> None:
    resp = await client.get("/health/live", headers={"X-Request-Id": "abc-123"})
    assert resp.headers["X-Request-Id"] == "abc-123"


async def test_request_id_is_generated_when_absent(client: TestClient) -> None:
    resp = await client.get("/health/live")
    assert len(resp.headers["X-Request-Id"]) == 32
