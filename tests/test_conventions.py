"""SPEC §1 conventions every endpoint shares: body shape, media types, size, headers, links."""

from __future__ import annotations

import dataclasses
import io
import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request

from service.app import AppOptions, init_app
from service.config import Settings
from service.errors import GlueError
from service.jsonapi import Page, day, timestamp
from service.typedefs import SETTINGS
from tests.conftest import JSONAPI, Customer, registration

POST_DATA_INVALID = {"errors": [{"status": 400, "detail": "Post data is invalid."}]}
INVALID_TYPE = {"errors": [{"status": 400, "detail": "Invalid type."}]}
NOT_FOUND = {"errors": [{"status": 404, "detail": "Not Found"}]}


async def post_raw(client: TestClient, raw: str | bytes, content_type: str = JSONAPI) -> Any:
    return await client.post("/customers", data=raw, headers={"Content-Type": content_type})


# ------------------------------------------------------------------ body shape


@pytest.mark.parametrize(
    "raw",
    [
        "{",
        "",
        "not json",
        '{"data": {"type": "customers", "attributes": {}}',
        b"\xff\xfe\x00garbage",
    ],
    ids=["truncated", "empty", "text", "unclosed", "not-utf8"],
)
async def test_malformed_json_answers_400_post_data_invalid(
    client: TestClient, raw: str | bytes
) -> None:
    resp = await post_raw(client, raw)
    assert resp.status == 400
    assert await resp.json() == POST_DATA_INVALID


@pytest.mark.parametrize(
    "doc",
    [[], [{"data": {}}], "a string", 42, None, True],
    ids=["list", "list-of-objects", "string", "number", "null", "bool"],
)
async def test_json_that_is_not_an_object_answers_400_post_data_invalid(
    client: TestClient, doc: Any
) -> None:
    resp = await post_raw(client, json.dumps(doc))
    assert resp.status == 400
    assert await resp.json() == POST_DATA_INVALID


@pytest.mark.parametrize(
    "value",
    ["NaN", "Infinity", "1e400", '"\\ud800"'],
    ids=["nan", "infinity", "overflowing-number", "lone-surrogate"],
)
async def test_json_outside_the_standard_answers_400_post_data_invalid(
    client: TestClient, value: str
) -> None:
    # Python's own parser accepts these; none of them is JSON (RFC 8259), and a lone
    # surrogate could never be stored as text anyway.
    raw = '{"data": {"type": "customers", "attributes": {"firstName": VALUE}}}'
    raw = raw.replace("VALUE", value)
    resp = await post_raw(client, raw)
    assert resp.status == 400
    assert await resp.json() == POST_DATA_INVALID


async def test_deeply_nested_json_answers_400_not_500(client: TestClient) -> None:
    resp = await post_raw(client, "[" * 200_000 + "]" * 200_000)
    assert resp.status == 400
    assert await resp.json() == POST_DATA_INVALID


@pytest.mark.parametrize(
    "doc",
    [
        {},
        {"data": None},
        {"data": []},
        {"data": "customers"},
        {"data": {"type": "customers"}},
        {"data": {"type": "customers", "attributes": None}},
        {"data": {"type": "customers", "attributes": []}},
        {"data": {"type": "customers", "attributes": "salutation=Mr"}},
    ],
    ids=[
        "no-data",
        "data-null",
        "data-list",
        "data-string",
        "no-attributes",
        "attributes-null",
        "attributes-list",
        "attributes-string",
    ],
)
async def test_document_without_data_attributes_object_answers_400(
    client: TestClient, doc: dict[str, Any]
) -> None:
    resp = await post_raw(client, json.dumps(doc))
    assert resp.status == 400
    assert await resp.json() == POST_DATA_INVALID


@pytest.mark.parametrize("type_", ["customer", "addresses", None], ids=["near", "other", "none"])
async def test_wrong_resource_type_answers_400_invalid_type(
    client: TestClient, type_: str | None
) -> None:
    doc = registration()
    doc["data"]["type"] = type_
    resp = await client.post("/customers", json=doc)
    assert resp.status == 400
    assert await resp.json() == INVALID_TYPE


async def test_missing_resource_type_answers_400_invalid_type(client: TestClient) -> None:
    doc = registration()
    del doc["data"]["type"]
    resp = await client.post("/customers", json=doc)
    assert resp.status == 400
    assert await resp.json() == INVALID_TYPE


# ------------------------------------------------------------------ media types and size


@pytest.mark.parametrize(
    "content_type",
    ["application/vnd.api+json", "application/json", "application/json; charset=utf-8"],
)
async def test_json_api_and_plain_json_bodies_are_accepted(
    client: TestClient, content_type: str
) -> None:
    resp = await post_raw(client, json.dumps(registration()), content_type)
    assert resp.status == 201


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/octet-stream", "text/json"],
)
async def test_other_content_types_answer_415_as_a_json_error_document(
    client: TestClient, content_type: str
) -> None:
    resp = await post_raw(client, json.dumps(registration()), content_type)
    assert resp.status == 415
    assert resp.content_type == JSONAPI
    body = await resp.json()
    assert [e["status"] for e in body["errors"]] == [415]
    assert "code" not in body["errors"][0]


async def test_body_over_one_mebibyte_answers_413(client: TestClient) -> None:
    raw = json.dumps(registration(padding="x" * (1024 * 1024))).encode()
    resp = await client.post(
        "/customers", data=io.BytesIO(raw), headers={"Content-Type": "application/vnd.api+json"}
    )
    assert resp.status == 413
    assert resp.content_type == JSONAPI
    assert [e["status"] for e in (await resp.json())["errors"]] == [413]


async def test_body_just_under_one_mebibyte_is_accepted(client: TestClient) -> None:
    doc = registration(padding="")
    room = 1024 * 1024 - len(json.dumps(doc))
    doc["data"]["attributes"]["padding"] = "x" * room
    assert len(json.dumps(doc)) == 1024 * 1024
    resp = await client.post("/customers", json=doc)
    assert resp.status == 201


# ------------------------------------------------------------------ routes


async def test_unknown_path_answers_404_not_found(client: TestClient) -> None:
    resp = await client.get("/no-such-resource")
    assert resp.status == 404
    assert resp.content_type == JSONAPI
    assert await resp.json() == NOT_FOUND


@pytest.mark.parametrize(("method", "path"), [("PUT", "/customers"), ("POST", "/customers/DE--1")])
async def test_unsupported_method_answers_404_not_found(
    client: TestClient, method: str, path: str
) -> None:
    resp = await client.request(method, path, json=registration())
    assert resp.status == 404
    assert await resp.json() == NOT_FOUND


async def test_responses_are_json_api(client: TestClient, customer: Customer) -> None:
    resp = await client.get("/customers", headers=customer.headers)
    assert resp.headers["Content-Type"].startswith(JSONAPI)


# ------------------------------------------------------------------ headers


async def test_request_id_is_generated_when_absent(client: TestClient) -> None:
    first = await client.get("/no-such-resource")
    second = await client.get("/no-such-resource")
    assert re.fullmatch(r"[0-9a-f]{32}", first.headers["X-Request-Id"])
    assert first.headers["X-Request-Id"] != second.headers["X-Request-Id"]


async def test_request_id_sent_by_the_client_is_echoed(client: TestClient) -> None:
    resp = await client.post("/customers", json=registration(), headers={"X-Request-Id": "abc-123"})
    assert resp.status == 201
    assert resp.headers["X-Request-Id"] == "abc-123"


async def test_request_id_is_echoed_on_errors_and_empty_responses(
    client: TestClient, customer: Customer
) -> None:
    error = await client.get("/customers", headers={"X-Request-Id": "err-1"})
    assert (error.status, error.headers["X-Request-Id"]) == (403, "err-1")
    deleted = await client.delete(
        f"/customers/{customer.reference}", headers={**customer.headers, "X-Request-Id": "del-1"}
    )
    assert (deleted.status, deleted.headers["X-Request-Id"]) == (204, "del-1")


async def test_unsafe_request_id_is_replaced(client: TestClient) -> None:
    resp = await client.get("/no-such-resource", headers={"X-Request-Id": "x" * 500})
    assert re.fullmatch(r"[0-9a-f]{32}", resp.headers["X-Request-Id"])


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "en_US"),
        ("de-DE,de;q=0.9", "de_DE"),
        ("de", "de_DE"),
        ("en-GB", "en_US"),
        ("de-AT", "de_DE"),
        ("DE-de", "de_DE"),
        ("fr-FR, fr;q=0.9", "en_US"),
        ("fr, de;q=0.5", "de_DE"),
        ("en;q=0.1, de;q=0.9", "de_DE"),
        ("*", "en_US"),
        ("de;q=0, en;q=0.5", "en_US"),
    ],
)
async def test_content_language_follows_accept_language(
    client: TestClient, accept: str | None, expected: str
) -> None:
    headers = {"Accept-Language": accept} if accept is not None else {}
    resp = await client.get("/no-such-resource", headers=headers)
    assert resp.headers["Content-Language"] == expected


# ------------------------------------------------------------------ links


async def test_self_links_are_built_from_public_base_url(client: TestClient) -> None:
    assert client.app[SETTINGS].public_base_url == "http://glue.test"
    resp = await client.post("/customers", json=registration())
    doc = await resp.json()
    assert doc["data"]["links"]["self"] == f"http://glue.test/customers/{doc['data']['id']}"


async def test_self_links_default_to_the_request_origin(
    aiohttp_client: Callable[[web.Application], Awaitable[TestClient]],
    settings: Settings,
    app_options: AppOptions,
) -> None:
    app = init_app(dataclasses.replace(settings, public_base_url=None), app_options)
    client = await aiohttp_client(app)
    doc = await (await client.post("/customers", json=registration())).json()
    origin = f"http://{client.host}:{client.port}"
    assert doc["data"]["links"]["self"] == f"{origin}/customers/{doc['data']['id']}"


# ------------------------------------------------------------------ formats (pure functions)


def test_timestamps_are_written_in_utc_with_microseconds() -> None:
    berlin = timezone(timedelta(hours=2))
    assert timestamp(datetime(2024, 5, 1, 12, 30, 5, 42, tzinfo=berlin)) == (
        "2024-05-01 10:30:05.000042"
    )
    assert timestamp(datetime(2024, 5, 1, tzinfo=UTC)) == "2024-05-01 00:00:00.000000"
    assert timestamp(None) is None


def test_dates_are_written_year_month_day() -> None:
    assert day(date(1990, 1, 31)) == "1990-01-31"
    assert day(None) is None


# ------------------------------------------------------------------ pagination (pure)


def page_request(query: str) -> web.Request:
    app = web.Application()
    app[SETTINGS] = Settings(public_base_url="http://glue.test")
    return make_mocked_request("GET", f"/things?{query}", app=app)


@pytest.mark.parametrize(
    "query",
    [
        "page[limit]=0",
        "page[limit]=501",
        "page[limit]=ten",
        "page[offset]=-1",
        "page[offset]=1.5",
    ],
)
def test_bad_pagination_parameters_answer_400(query: str) -> None:
    with pytest.raises(GlueError) as raised:
        Page.from_request(page_request(query))
    assert [e.to_json() for e in raised.value.errors] == [
        {"status": 400, "detail": "Pagination parameters are invalid."}
    ]


def test_pagination_limit_of_500_is_allowed() -> None:
    assert Page.from_request(page_request("page[limit]=500")).limit == 500


def test_pagination_links_name_first_prev_next_last() -> None:
    request = page_request("filter=x&page[offset]=10&page[limit]=10")
    links = Page.from_request(request).links(request, total=35)

    def offset(url: str) -> tuple[str, str]:
        assert url.startswith("http://glue.test/things?filter=x&")
        q = dict(p.split("=") for p in url.split("?")[1].split("&"))
        return q["page%5Boffset%5D"], q["page%5Blimit%5D"]

    assert {k: offset(v) for k, v in links.items()} == {
        "first": ("0", "10"),
        "prev": ("0", "10"),
        "next": ("20", "10"),
        "last": ("30", "10"),
    }


def test_first_page_has_no_prev_and_last_page_no_next() -> None:
    first = page_request("page[limit]=10")
    assert set(Page.from_request(first).links(first, total=15)) == {"first", "next", "last"}
    last = page_request("page[offset]=10&page[limit]=10")
    assert set(Page.from_request(last).links(last, total=15)) == {"first", "prev", "last"}
