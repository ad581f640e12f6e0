"""Availability-notification attributes (SPEC §7)."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import ValidationError

from service.validation import INVALID_CHOICE, Email, GlueSchema, Text

# What a SKU may look like before anyone asks the product lookup about it; it also
# keeps the SKU safe to place into the lookup URL as it is.
SKU = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class Sku(Text):
    """A well-formed SKU: letters, digits, `.`, `_`, `-`; at most 64 characters."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_len=64, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        sku = super()._deserialize(value, attr, data, **kwargs)
        if not SKU.fullmatch(sku):
            raise ValidationError(INVALID_CHOICE)
        return sku


class SubscriptionSchema(GlueSchema):
    """POST /availability-notifications: who to tell about which product."""

    email = Email(required=True)
    sku = Sku(required=True, metadata={"description": "[A-Za-z0-9._-]{1,64}"})
