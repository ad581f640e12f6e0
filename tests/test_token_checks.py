"""Access-token checks (SPEC §1): 403 002 when missing, 401 001 when invalid, and check order."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import timedelta
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from service.clock import Clock
from tests.conftest import Customer, bearer, registration

MISSING = {"errors": [{"code": "002", "status": 403, "detail": "Missing access token."}]}
INVALID = {"errors": [{"code": "001", "status": 401, "detail": "Invalid access token."}]}
POST_DATA_INVALID = {"errors": [{"status": 400, "detail": "Post data is invalid."}]}
REFERENCE_MISSING = {
    "errors": [{"code": "405", "status": 400, "detail": "Customer reference is missing."}]
}
PATCH_BODY = {"data": {"type": "customers", "attributes": {"firstName": "Jane"}}}


def unverified_claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


async def assert_invalid(resp: Any) -> None:
    assert resp.status == 401
    assert await resp.json() == INVALID
    assert resp.headers["WWW-Authenticate"] == "Bearer"


# ------------------------------------------------------------------ missing


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/customers", None),
        ("GET", "/customers/DE--1", None),
        ("PATCH", "/customers/DE--1", PATCH_BODY),
        ("DELETE", "/customers/DE--1", None),
    ],
    ids=["list", "get", "patch", "delete"],
)
async def test_protected_route_without_a_token_answers_403_002(
    client: TestClient, method: str, path: str, body: Any
) -> None:
    resp = await client.request(method, path, json=body)
    assert resp.status == 403
    assert await resp.json() == MISSING


# ------------------------------------------------------------------ invalid


async def test_valid_token_is_accepted(client: TestClient, customer: Customer) -> None:
    resp = await client.get("/customers", headers=customer.headers)
    assert resp.status == 200


async def test_garbage_token_answers_401_001(client: TestClient) -> None:
    await assert_invalid(await client.get("/customers", headers=bearer("not-a-jwt")))


async def test_empty_bearer_answers_401_001(client: TestClient) -> None:
    await assert_invalid(await client.get("/customers", headers={"Authorization": "Bearer "}))


async def test_other_authorization_scheme_answers_401_001(client: TestClient) -> None:
    headers = {"Authorization": "Basic " + base64.b64encode(b"a:b").decode()}
    await assert_invalid(await client.get("/customers", headers=headers))


async def test_forged_signature_answers_401_001(client: TestClient, customer: Customer) -> None:
    header, payload, signature = customer.access_token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    token = f"{header}.{payload}.{flipped}"
    await assert_invalid(await client.get("/customers", headers=bearer(token)))


async def test_payload_changed_under_a_valid_signature_answers_401_001(
    client: TestClient, customer: Customer
) -> None:
    header, _, signature = customer.access_token.split(".")
    claims = unverified_claims(customer.access_token)
    claims["sub"] = claims["customer_reference"] = "DE--1"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    token = f"{header}.{forged}.{signature}"
    await assert_invalid(await client.get("/customers", headers=bearer(token)))


async def test_alg_none_token_answers_401_001(client: TestClient, customer: Customer) -> None:
    kid = jwt.get_unverified_header(customer.access_token)["kid"]
    token = jwt.encode(
        unverified_claims(customer.access_token), None, algorithm="none", headers={"kid": kid}
    )
    await assert_invalid(await client.get("/customers", headers=bearer(token)))


async def test_token_signed_by_another_key_answers_401_001(
    client: TestClient, customer: Customer
) -> None:
    token = jwt.encode(
        unverified_claims(customer.access_token),
        other_key(),
        algorithm="RS256",
        headers={"kid": "someone-else"},
    )
    await assert_invalid(await client.get("/customers", headers=bearer(token)))


async def test_token_signed_by_another_key_under_our_key_id_answers_401_001(
    client: TestClient, customer: Customer
) -> None:
    kid = jwt.get_unverified_header(customer.access_token)["kid"]
    token = jwt.encode(
        unverified_claims(customer.access_token),
        other_key(),
        algorithm="RS256",
        headers={"kid": kid},
    )
    await assert_invalid(await client.get("/customers", headers=bearer(token)))


async def test_hmac_token_keyed_with_our_public_key_answers_401_001(
    client: TestClient, customer: Customer
) -> None:
    jwks = await (await client.get("/.well-known/jwks.json")).json(content_type=None)
    public = jwt.PyJWK.from_dict(jwks["keys"][0]).key
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": jwks["keys"][0]["kid"]}
    signing_input = (
        base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=")
        + b"."
        + customer.access_token.split(".")[1].encode()
    )
    mac = hmac.new(pem, signing_input, hashlib.sha256).digest()
    token = (signing_input + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode()
    await assert_invalid(await client.get("/customers", headers=bearer(token)))


async def test_expired_token_answers_401_001(
    client: TestClient, customer: Customer, clock: Clock
) -> None:
    clock.advance(timedelta(seconds=28800))
    await assert_invalid(await client.get("/customers", headers=customer.headers))


async def test_token_is_valid_until_just_before_it_expires(
    client: TestClient, customer: Customer, clock: Clock
) -> None:
    clock.advance(timedelta(seconds=28800 - 60))
    resp = await client.get("/customers", headers=customer.headers)
    assert resp.status == 200


async def test_token_without_expiry_answers_401_001(client: TestClient, customer: Customer) -> None:
    # Correctly signed would need our private key; an unsigned one must fail either way.
    claims = unverified_claims(customer.access_token)
    del claims["exp"]
    token = jwt.encode(claims, other_key(), algorithm="RS256")
    await assert_invalid(await client.get("/customers", headers=bearer(token)))


async def test_token_of_an_unknown_customer_is_rejected_like_a_forged_one(
    client: TestClient,
) -> None:
    claims = {
        "sub": "DE--999999999",
        "customer_reference": "DE--999999999",
        "scope": "customer",
        "gen": 0,
        "iat": int(time.time()),
        "exp": int(time.time()) + 60,
        "jti": uuid.uuid4().hex,
    }
    token = jwt.encode(claims, other_key(), algorithm="RS256")
    await assert_invalid(await client.get("/customers", headers=bearer(token)))


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/customers", registration()),
        (
            "/access-tokens",
            {"data": {"type": "access-tokens", "attributes": {"username": "a", "password": "b"}}},
        ),
        (
            "/customer-confirmation",
            {"data": {"type": "customer-confirmation", "attributes": {"registrationKey": "k"}}},
        ),
    ],
    ids=["register", "login", "confirm"],
)
async def test_invalid_token_on_a_public_route_answers_401_001(
    client: TestClient, path: str, body: dict[str, Any]
) -> None:
    await assert_invalid(await client.post(path, json=body, headers=bearer("garbage")))


# ------------------------------------------------------------------ check order


async def test_unknown_route_beats_an_invalid_token(client: TestClient) -> None:
    resp = await client.get("/no-such-thing", headers=bearer("garbage"))
    assert resp.status == 404


async def test_wrong_content_type_beats_a_missing_token(client: TestClient) -> None:
    resp = await client.patch(
        "/customers/DE--1", data=json.dumps(PATCH_BODY), headers={"Content-Type": "text/plain"}
    )
    assert resp.status == 415


async def test_malformed_body_beats_a_missing_token(client: TestClient) -> None:
    resp = await client.patch(
        "/customers/DE--1", data="{", headers={"Content-Type": "application/vnd.api+json"}
    )
    assert resp.status == 400
    assert await resp.json() == POST_DATA_INVALID


async def test_malformed_body_beats_an_invalid_token(client: TestClient) -> None:
    resp = await client.patch(
        "/customers/DE--1",
        data="{",
        headers={"Content-Type": "application/vnd.api+json", **bearer("garbage")},
    )
    assert resp.status == 400
    assert await resp.json() == POST_DATA_INVALID


async def test_patch_without_reference_answers_405_before_the_token_check(
    client: TestClient,
) -> None:
    resp = await client.patch("/customers", json=PATCH_BODY)
    assert resp.status == 400
    assert await resp.json() == REFERENCE_MISSING


async def test_patch_without_reference_answers_405_even_with_an_invalid_token(
    client: TestClient,
) -> None:
    resp = await client.patch("/customers", json=PATCH_BODY, headers=bearer("garbage"))
    assert resp.status == 400
    assert await resp.json() == REFERENCE_MISSING


async def test_patch_without_reference_checks_the_body_shape_first(client: TestClient) -> None:
    resp = await client.patch(
        "/customers", data="[]", headers={"Content-Type": "application/vnd.api+json"}
    )
    assert resp.status == 400
    assert await resp.json() == POST_DATA_INVALID


async def test_delete_without_reference_answers_405_before_the_token_check(
    client: TestClient,
) -> None:
    resp = await client.delete("/customers")
    assert resp.status == 400
    assert await resp.json() == REFERENCE_MISSING


async def test_missing_token_beats_attribute_validation(client: TestClient) -> None:
    body = {"data": {"type": "customers", "attributes": {"firstName": ""}}}
    resp = await client.patch("/customers/DE--1", json=body)
    assert resp.status == 403
    assert await resp.json() == MISSING


async def test_invalid_token_beats_attribute_validation_on_registration(
    client: TestClient,
) -> None:
    body = {"data": {"type": "customers", "attributes": {}}}
    await assert_invalid(await client.post("/customers", json=body, headers=bearer("garbage")))
