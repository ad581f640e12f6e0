"""POST /access-tokens (login) and GET /.well-known/jwks.json."""

from __future__ import annotations

import hashlib
from typing import Any

import asyncpg
import jwt
import pytest
from aiohttp.test_utils import TestClient

from service.mail.sink import MailSink
from tests.conftest import (
    JSONAPI,
    PASSWORD,
    Customer,
    confirm,
    confirmation_key,
    login,
    register,
    unique_email,
)

AUTH_FAILED = {"code": "003", "status": 401, "detail": "Failed to authenticate user."}


def claims(client: TestClient, token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """Verify a token with nothing but the published key set, as a third party would."""
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
    return jwt.decode(token, key.key, algorithms=["RS256"], options={"verify_iss": False})


async def unconfirmed(client: TestClient) -> str:
    email = unique_email("unconfirmed")
    await register(client, email=email)
    return email


async def test_login_before_confirmation_answers_401_003(client: TestClient) -> None:
    resp = await login(client, await unconfirmed(client))
    assert resp.status == 401
    assert await resp.json() == {"errors": [AUTH_FAILED]}
    assert resp.headers["WWW-Authenticate"] == "Bearer"


async def test_login_after_confirmation_answers_201_with_the_token_document(
    client: TestClient, smtp: MailSink
) -> None:
    email = unique_email("login.ok")
    await register(client, email=email)
    assert await confirm(client, await confirmation_key(smtp, email)) == 204
    resp = await login(client, email)
    assert resp.status == 201
    assert resp.content_type == JSONAPI
    data = (await resp.json())["data"]
    assert data["type"] == "access-tokens"
    assert data["id"] is None
    attrs = data["attributes"]
    assert set(attrs) == {
        "tokenType",
        "expiresIn",
        "accessToken",
        "refreshToken",
        "refreshTokenExpiresIn",
        "idCompanyUser",
    }
    assert attrs["tokenType"] == "Bearer"
    assert attrs["expiresIn"] == 28800
    assert attrs["refreshTokenExpiresIn"] == 2592000
    assert attrs["idCompanyUser"] is None
    assert isinstance(attrs["accessToken"], str) and attrs["accessToken"]
    assert isinstance(attrs["refreshToken"], str) and attrs["refreshToken"]


async def test_username_is_matched_case_insensitively(
    client: TestClient, customer: Customer
) -> None:
    resp = await login(client, customer.email.upper())
    assert resp.status == 201


async def test_wrong_password_answers_401_003(client: TestClient, customer: Customer) -> None:
    resp = await login(client, customer.email, PASSWORD + "x")
    assert resp.status == 401
    assert await resp.json() == {"errors": [AUTH_FAILED]}


async def test_unknown_email_answers_401_003(client: TestClient) -> None:
    resp = await login(client, unique_email("nobody"))
    assert resp.status == 401
    assert await resp.json() == {"errors": [AUTH_FAILED]}


async def test_wrong_password_unknown_email_and_unconfirmed_look_the_same(
    client: TestClient, customer: Customer
) -> None:
    answers = []
    for resp in (
        await login(client, customer.email, "Wrong-password1"),
        await login(client, unique_email("nobody")),
        await login(client, await unconfirmed(client)),
    ):
        answers.append(
            (
                resp.status,
                resp.headers.get("WWW-Authenticate"),
                resp.content_type,
                await resp.read(),
            )
        )
    assert answers[0] == answers[1] == answers[2]


@pytest.mark.parametrize(
    ("attributes", "errors"),
    [
        (
            {},
            ["username => This field is missing.", "password => This field is missing."],
        ),
        ({"username": "", "password": PASSWORD}, ["username => This value should not be blank."]),
        (
            {"username": "a@example.com", "password": None},
            ["password => This value should not be blank."],
        ),
    ],
    ids=["missing", "blank-username", "null-password"],
)
async def test_missing_or_blank_credentials_answer_901(
    client: TestClient, attributes: dict[str, Any], errors: list[str]
) -> None:
    resp = await client.post(
        "/access-tokens", json={"data": {"type": "access-tokens", "attributes": attributes}}
    )
    assert resp.status == 422
    assert await resp.json() == {
        "errors": [{"code": "901", "status": 422, "detail": d} for d in errors]
    }


async def test_access_token_names_the_customer_with_scope_customer(
    client: TestClient, customer: Customer
) -> None:
    jwks = await (await client.get("/.well-known/jwks.json")).json()
    got = claims(client, customer.access_token, jwks)
    assert got["sub"] == customer.reference
    assert got["customer_reference"] == customer.reference
    assert got["scope"] == "customer"
    assert got["exp"] - got["iat"] == 28800
    assert got["jti"]


async def test_every_login_issues_a_distinct_token(client: TestClient, customer: Customer) -> None:
    first = (await (await login(client, customer.email)).json())["data"]["attributes"]
    second = (await (await login(client, customer.email)).json())["data"]["attributes"]
    assert first["accessToken"] != second["accessToken"]
    assert first["refreshToken"] != second["refreshToken"]


async def test_refresh_token_is_stored_only_as_its_hash(
    client: TestClient, customer: Customer, conn: asyncpg.Connection
) -> None:
    digest = hashlib.sha256(customer.refresh_token.encode()).digest()
    row = await conn.fetchrow(
        "SELECT customer_reference FROM refresh_tokens WHERE token_hash = $1", digest
    )
    assert row["customer_reference"] == customer.reference
    plain = await conn.fetchval(
        "SELECT count(*) FROM refresh_tokens t WHERE t::text LIKE $1",
        f"%{customer.refresh_token}%",
    )
    assert plain == 0


async def test_jwks_serves_an_rsa_key_that_verifies_issued_tokens(
    client: TestClient, customer: Customer
) -> None:
    resp = await client.get("/.well-known/jwks.json")
    assert resp.status == 200
    jwks = await resp.json(content_type=None)
    assert [k["kty"] for k in jwks["keys"]] == ["RSA"]
    assert jwks["keys"][0]["alg"] == "RS256"
    assert jwks["keys"][0]["kid"] == jwt.get_unverified_header(customer.access_token)["kid"]
    assert claims(client, customer.access_token, jwks)["sub"] == customer.reference


async def test_jwks_holds_no_private_key_material(client: TestClient) -> None:
    jwks = await (await client.get("/.well-known/jwks.json")).json(content_type=None)
    for key in jwks["keys"]:
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)
