"""Access tokens: RS256 JWTs signed with our key, verified against it, served as JWKS."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from service.clock import Clock

ISSUER = "glue-customers"
CUSTOMER_SCOPE = "customer"


class InvalidToken(Exception):
    """Bad signature, wrong algorithm, unknown key, expired or malformed."""


@dataclass(frozen=True)
class Principal:
    """Who a valid access token speaks for."""

    kind: Literal["customer", "client"]
    subject: str  # customer reference or client id
    scopes: frozenset[str]
    generation: int = 0
    token_id: str = ""
    # When the token expires (seconds since the epoch): a long-lived response, such
    # as a feed stream, ends there.
    expires_at: float = math.inf

    @property
    def customer_reference(self) -> str | None:
        """The customer's reference for customer tokens, else None."""
        return self.subject if self.kind == "customer" else None

    @property
    def actor(self) -> str:
        """How events record this principal as their cause."""
        return f"{self.kind}:{self.subject}"


def _b64(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class TokenService:
    """Issues and verifies access tokens."""

    def __init__(self, private_key_pem: bytes, access_ttl: int, clock: Clock) -> None:
        key = serialization.load_pem_private_key(private_key_pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("JWT_PRIVATE_KEY_FILE must hold an RSA private key")
        self._private = key
        self._public = key.public_key()
        der = self._public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.kid = hashlib.sha256(der).hexdigest()[:16]
        self.access_ttl = access_ttl
        self._clock = clock

    def issue_customer(self, reference: str, generation: int) -> str:
        """An access token for a customer."""
        return self._sign(
            {
                "sub": reference,
                "customer_reference": reference,
                "scope": CUSTOMER_SCOPE,
                "gen": generation,
            }
        )

    def issue_client(self, client_id: str, scopes: tuple[str, ...]) -> str:
        """An access token for an internal client (client-credentials grant)."""
        return self._sign({"sub": client_id, "client_id": client_id, "scope": " ".join(scopes)})

    def _sign(self, claims: dict[str, Any]) -> str:
        now = int(self._clock.now().timestamp())
        claims = {
            **claims,
            "iss": ISSUER,
            "iat": now,
            "exp": now + self.access_ttl,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._private, algorithm="RS256", headers={"kid": self.kid})

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; InvalidToken otherwise."""
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != "RS256" or header.get("kid") != self.kid:
                raise InvalidToken("unknown key or algorithm")
            # Expiry is checked against our (injectable) clock below.
            claims = jwt.decode(
                token,
                self._public,
                algorithms=["RS256"],
                issuer=ISSUER,
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "require": ["exp", "iat", "sub", "scope"],
                },
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from None
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp <= self._clock.now().timestamp():
            raise InvalidToken("expired")
        scopes = frozenset(str(claims["scope"]).split())
        if "client_id" in claims:
            return Principal(
                "client",
                str(claims["client_id"]),
                scopes,
                token_id=str(claims.get("jti")),
                expires_at=float(exp),
            )
        if CUSTOMER_SCOPE not in scopes or not isinstance(claims.get("gen"), int):
            raise InvalidToken("not a customer token")
        return Principal(
            "customer",
            str(claims["sub"]),
            scopes,
            int(claims["gen"]),
            str(claims.get("jti")),
            float(exp),
        )

    def jwks(self) -> dict[str, Any]:
        """The public key as a JSON Web Key Set."""
        numbers = self._public.public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "alg": "RS256",
                    "kid": self.kid,
                    "n": _b64(numbers.n),
                    "e": _b64(numbers.e),
                }
            ]
        }

    def jwks_json(self) -> str:
        """JWKS, serialised."""
        return json.dumps(self.jwks())
