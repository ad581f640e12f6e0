"""POST /token: the OAuth 2.0 grants and their RFC 6749 answers (plain JSON, not JSON:API)."""

from __future__ import annotations

import base64
import dataclasses
import io
from typing import Any
from urllib.parse import quote_plus

import jwt
import pytest
from aiohttp.test_utils import TestClient

from service.config import OAuthClient, Settings
from tests.conftest import Customer, bearer

AUDITOR = OAuthClient(
    id="auditor", secret="s3cret:with/odd+chars", scopes=("events:read", "audit:read")
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """One internal client with two scopes."""
    return dataclasses.replace(settings, oauth_clients=(AUDITOR,))


def basic(client_id: str, secret: str) -> dict[str, str]:
    """HTTP Basic client authentication as RFC 6749 §2.3.1 encodes it."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


async def token(
    client: TestClient, form: dict[str, str], headers: dict[str, str] | None = None
) -> Any:
    """POST a form to /token."""
    return await client.post("/token", data=form, headers=headers)


async def oauth_error(resp: Any, status: int, error: str) -> dict[str, Any]:
    """Assert an RFC 6749 §5.2 error answer; returns its body."""
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert set(body) == {"error", "error_description"}
    assert body["error"] == error
    assert body["error_description"]
    return body


def claims(access_token: str) -> dict[str, Any]:
    """The JWT's claims (the signature is checked by the API itself in other tests)."""
    return jwt.decode(access_token, options={"verify_signature": False})


# ------------------------------------------------------------------ password


async def test_password_grant_answers_an_oauth_token(
    client: TestClient, customer: Customer
) -> None:
    resp = await token(
        client,
        {"grant_type": "password", "username": customer.email, "password": customer.password},
    )
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert resp.headers["Cache-Control"] == "no-store"
    body = await resp.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 28800
    got = await client.get(f"/customers/{customer.reference}", headers=bearer(body["access_token"]))
    assert got.status == 200
    assert claims(body["access_token"])["customer_reference"] == customer.reference


async def test_password_grant_with_a_wrong_password_is_invalid_grant(
    client: TestClient, customer: Customer
) -> None:
    resp = await token(
        client, {"grant_type": "password", "username": customer.email, "password": "wrong-pass1"}
    )
    body = await oauth_error(resp, 400, "invalid_grant")
    assert body["error_description"] == "Failed to authenticate user."


async def test_password_grant_without_password_is_invalid_request(
    client: TestClient, customer: Customer
) -> None:
    resp = await token(client, {"grant_type": "password", "username": customer.email})
    await oauth_error(resp, 400, "invalid_request")


async def test_password_grant_with_a_wrong_client_secret_is_invalid_client(
    client: TestClient, customer: Customer
) -> None:
    form = {"grant_type": "password", "username": customer.email, "password": customer.password}
    resp = await token(client, form, basic("auditor", "wrong"))
    await oauth_error(resp, 401, "invalid_client")


# ------------------------------------------------------------------ refresh_token


async def test_refresh_token_grant_rotates_the_token(
    client: TestClient, customer: Customer
) -> None:
    resp = await token(
        client, {"grant_type": "refresh_token", "refresh_token": customer.refresh_token}
    )
    assert resp.status == 200
    body = await resp.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["refresh_token"] != customer.refresh_token
    got = await client.get(f"/customers/{customer.reference}", headers=bearer(body["access_token"]))
    assert got.status == 200
    again = await token(
        client, {"grant_type": "refresh_token", "refresh_token": customer.refresh_token}
    )
    await oauth_error(again, 400, "invalid_grant")


async def test_refresh_token_grant_with_an_unknown_token_is_invalid_grant(
    client: TestClient,
) -> None:
    resp = await token(client, {"grant_type": "refresh_token", "refresh_token": "unknown"})
    body = await oauth_error(resp, 400, "invalid_grant")
    assert body["error_description"] == "Failed to refresh token."


async def test_refresh_token_grant_without_the_token_is_invalid_request(
    client: TestClient,
) -> None:
    resp = await token(client, {"grant_type": "refresh_token"})
    await oauth_error(resp, 400, "invalid_request")


# ------------------------------------------------------------------ client_credentials


async def test_client_credentials_with_basic_auth(client: TestClient) -> None:
    resp = await token(
        client, {"grant_type": "client_credentials"}, basic(AUDITOR.id, AUDITOR.secret)
    )
    assert resp.status == 200
    body = await resp.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "events:read audit:read"


async def test_client_credentials_with_form_fields(client: TestClient) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": AUDITOR.id,
        "client_secret": AUDITOR.secret,
    }
    resp = await token(client, form)
    assert resp.status == 200
    assert "refresh_token" not in await resp.json()


async def test_client_token_carries_client_id_and_scope(client: TestClient) -> None:
    resp = await token(
        client, {"grant_type": "client_credentials"}, basic(AUDITOR.id, AUDITOR.secret)
    )
    got = claims((await resp.json())["access_token"])
    assert got["client_id"] == "auditor"
    assert got["scope"] == "events:read audit:read"
    assert "customer_reference" not in got


async def test_client_credentials_may_narrow_the_scope(client: TestClient) -> None:
    form = {"grant_type": "client_credentials", "scope": "audit:read"}
    resp = await token(client, form, basic(AUDITOR.id, AUDITOR.secret))
    assert resp.status == 200
    body = await resp.json()
    assert body["scope"] == "audit:read"
    assert claims(body["access_token"])["scope"] == "audit:read"


async def test_client_credentials_beyond_the_clients_scopes_is_invalid_scope(
    client: TestClient,
) -> None:
    form = {"grant_type": "client_credentials", "scope": "events:read admin"}
    resp = await token(client, form, basic(AUDITOR.id, AUDITOR.secret))
    await oauth_error(resp, 400, "invalid_scope")


async def test_client_credentials_with_a_wrong_secret_is_invalid_client(
    client: TestClient,
) -> None:
    resp = await token(client, {"grant_type": "client_credentials"}, basic(AUDITOR.id, "wrong"))
    await oauth_error(resp, 401, "invalid_client")
    assert resp.headers["WWW-Authenticate"].startswith("Basic")


async def test_client_credentials_with_a_wrong_form_secret_is_invalid_client(
    client: TestClient,
) -> None:
    form = {"grant_type": "client_credentials", "client_id": AUDITOR.id, "client_secret": "x"}
    await oauth_error(await token(client, form), 401, "invalid_client")


async def test_client_credentials_of_an_unknown_client_is_invalid_client(
    client: TestClient,
) -> None:
    resp = await token(
        client, {"grant_type": "client_credentials"}, basic("nobody", AUDITOR.secret)
    )
    await oauth_error(resp, 401, "invalid_client")


async def test_client_credentials_without_client_authentication_is_invalid_client(
    client: TestClient,
) -> None:
    resp = await token(client, {"grant_type": "client_credentials"})
    await oauth_error(resp, 401, "invalid_client")


async def test_two_client_authentication_methods_are_invalid_request(
    client: TestClient,
) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": AUDITOR.id,
        "client_secret": AUDITOR.secret,
    }
    resp = await token(client, form, basic(AUDITOR.id, AUDITOR.secret))
    await oauth_error(resp, 400, "invalid_request")


# ------------------------------------------------------------------ request errors


async def test_missing_grant_type_is_invalid_request(client: TestClient) -> None:
    await oauth_error(await token(client, {"username": "a@b.c"}), 400, "invalid_request")


async def test_an_unknown_grant_type_is_unsupported_grant_type(client: TestClient) -> None:
    resp = await token(client, {"grant_type": "authorization_code", "code": "x"})
    await oauth_error(resp, 400, "unsupported_grant_type")


async def test_a_repeated_parameter_is_invalid_request(client: TestClient) -> None:
    resp = await client.post(
        "/token",
        data="grant_type=password&grant_type=client_credentials",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    await oauth_error(resp, 400, "invalid_request")


async def test_a_json_body_is_invalid_request(client: TestClient) -> None:
    resp = await client.post("/token", json={"grant_type": "client_credentials"})
    await oauth_error(resp, 400, "invalid_request")


@pytest.mark.parametrize("username", ["x" * 9000 + "@example.com", "a\u0000b@example.com"])
async def test_password_grant_with_a_username_no_customer_can_have_is_invalid_grant(
    client: TestClient, username: str
) -> None:
    form = {"grant_type": "password", "username": username, "password": "Whatever-1"}
    await oauth_error(await token(client, form), 400, "invalid_grant")


async def test_a_body_over_one_mebibyte_is_invalid_request_413(client: TestClient) -> None:
    form = b"grant_type=password&username=a%40b.c&password=" + b"x" * (1024 * 1024)
    resp = await client.post(
        "/token",
        data=io.BytesIO(form),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    await oauth_error(resp, 413, "invalid_request")
