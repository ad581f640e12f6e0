"""Key material: the master key and the token-signing key, generated on first run."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from events.crypto import parse_master_key
from service.config import Settings


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    # Rename is atomic: two processes starting together agree on one key.
    if not path.exists():
        os.replace(tmp, path)
    else:
        tmp.unlink()


def master_key(settings: Settings) -> bytes:
    """MASTER_KEY, or the one generated into DATA_DIR on first run."""
    if settings.master_key:
        return parse_master_key(settings.master_key)
    path = settings.data_dir / "master.key"
    if not path.exists():
        _write_private(path, secrets.token_hex(32).encode())
    return parse_master_key(path.read_text())


def signing_key_pem(settings: Settings) -> bytes:
    """The PEM of the private key that signs access tokens (generated when absent)."""
    path = settings.jwt_private_key_file or settings.data_dir / "jwt-private.pem"
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_private(path, pem)
    return path.read_bytes()
