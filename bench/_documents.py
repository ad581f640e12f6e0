"""The JSON:API request documents the benchmarks send."""

from __future__ import annotations

import uuid
from typing import Any


def document(resource_type: str, **attributes: Any) -> dict[str, Any]:
    """A request document of one resource with these attributes."""
    return {"data": {"type": resource_type, "attributes": attributes}}


def unique_email(prefix: str = "bench") -> str:
    """An address nobody registered yet."""
    return f"{prefix}.{uuid.uuid4().hex}@example.com"


def registration(email: str, password: str) -> dict[str, Any]:
    """POST /customers."""
    return document(
        "customers",
        salutation="Mr",
        firstName="Bench",
        lastName="Mark",
        email=email,
        password=password,
        confirmPassword=password,
        acceptedTerms=True,
    )


def login(email: str, password: str) -> dict[str, Any]:
    """POST /access-tokens."""
    return document("access-tokens", username=email, password=password)


def confirmation(key: str) -> dict[str, Any]:
    """POST /customer-confirmation."""
    return document("customer-confirmation", registrationKey=key)


def address() -> dict[str, Any]:
    """POST /customers/{ref}/addresses: a default shipping and billing address."""
    return document(
        "addresses",
        salutation="Mr",
        firstName="Bench",
        lastName="Mark",
        address1="Julie-Wolfthorn-Strasse",
        address2="1",
        zipCode="10115",
        city="Berlin",
        iso2Code="DE",
        isDefaultShipping=True,
        isDefaultBilling=True,
    )
