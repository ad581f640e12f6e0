"""The new-password rules the request schemas leave to the domain."""

from __future__ import annotations

from service.domain.errors import PasswordCharsetInvalid, PasswordsDiffer


def require_printable(password: str) -> None:
    """420 for a password with non-printable characters."""
    if not password.isprintable():
        raise PasswordCharsetInvalid()


def require_new_password(password: str, confirmation: str) -> None:
    """Printable (420), then confirmed (406), in the SPEC's order."""
    require_printable(password)
    if password != confirmation:
        raise PasswordsDiffer()
