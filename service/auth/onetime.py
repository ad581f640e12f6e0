"""Single-use keys (registration, password restore) derived, never stored in clear.

A key is an HMAC of the event that issued it, under a secret derived from the
master key. The event stores only the key's hash; the mailer re-derives the key
from the event id when it writes the mail, so no table holds it in clear.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

REGISTRATION = "registration"
RESTORE = "restore"


class OneTimeKeys:
    """Derives the key an event issued."""

    def __init__(self, master_key: bytes) -> None:
        self._secret = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"glue-customers one-time keys"
        ).derive(master_key)

    def key(self, purpose: str, event_id: uuid.UUID) -> str:
        """The key (64 hex digits) issued by an event for a purpose."""
        # hmac.digest: the one-shot C path, without building an HMAC object.
        return hmac.digest(self._secret, f"{purpose}:{event_id}".encode(), "sha256").hex()


def key_hash(key: str) -> str:
    """What events and read models store instead of a key."""
    return hashlib.sha256(key.encode()).hexdigest()
