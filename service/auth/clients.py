"""Internal OAuth clients (OAUTH_CLIENTS) and their authentication, in constant time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from service.config import OAuthClient

# Compared against when the client id is unknown, so that case costs the same.
_NOBODY = hashlib.sha256(b"no such client").digest()


def _digest(secret: str) -> bytes:
    # Fixed-length digests: compare_digest then leaks not even the secret's length.
    return hashlib.sha256(secret.encode()).digest()


class OAuthClients:
    """The configured clients, looked up by id."""

    def __init__(self, clients: Iterable[OAuthClient]) -> None:
        self._clients = {c.id: (c, _digest(c.secret)) for c in clients}

    def authenticate(self, client_id: str, secret: str) -> OAuthClient | None:
        """The client when id and secret match, else None (unknown id or wrong secret alike)."""
        client, expected = self._clients.get(client_id, (None, _NOBODY))
        matches = hmac.compare_digest(_digest(secret), expected)
        return client if matches and client is not None else None

    @staticmethod
    def granted_scopes(client: OAuthClient, requested: str | None) -> tuple[str, ...] | None:
        """The scopes to grant: all of the client's, or the requested subset; None if not a subset."""
        if requested is None or not requested.strip():
            return client.scopes
        wanted = tuple(dict.fromkeys(requested.split()))
        if not set(wanted) <= set(client.scopes):
            return None
        return wanted
