"""Address attributes, in the order Glue reports their violations (SPEC §6)."""

from __future__ import annotations

from typing import Any

import pycountry
from marshmallow import ValidationError, post_load

from service.validation import INVALID_CHOICE, GlueSchema, StrictBool, Text, salutation_field


class CountryCode(Text):
    """An ISO 3166-1 alpha-2 code (any case in, upper case out)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        code = super()._deserialize(value, attr, data, **kwargs)
        # The length/ASCII guard keeps pycountry from matching other code kinds.
        if len(code) != 2 or not code.isascii() or not code.isalpha():
            raise ValidationError(INVALID_CHOICE)
        if pycountry.countries.get(alpha_2=code.upper()) is None:
            raise ValidationError(INVALID_CHOICE)
        return code.upper()


_OPTIONAL = ("address3", "company", "phone")


def _optional(max_len: int) -> Text:
    # Optional lines may be sent blank or null; both clear the value.
    return Text(max_len=max_len, blank_ok=True, allow_none=True)


class AddressSchema(GlueSchema):
    """POST requires every field marked required; PATCH takes any subset. `country` is
    derived from iso2Code and therefore not an input (unknown keys are ignored)."""

    salutation = salutation_field(required=True)
    first_name = Text(data_key="firstName", required=True, min_len=1, max_len=100)
    last_name = Text(data_key="lastName", required=True, min_len=1, max_len=100)
    address1 = Text(required=True, max_len=255)
    address2 = Text(required=True, max_len=255)
    address3 = _optional(255)
    zip_code = Text(data_key="zipCode", required=True, max_len=15)
    city = Text(required=True, min_len=3, max_len=255)
    iso2_code = CountryCode(
        data_key="iso2Code", required=True, metadata={"description": "ISO 3166-1 alpha-2 code"}
    )
    company = _optional(255)
    phone = _optional(255)
    is_default_shipping = StrictBool(data_key="isDefaultShipping", required=True)
    is_default_billing = StrictBool(data_key="isDefaultBilling", required=True)

    @post_load
    def _blank_is_null(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        # Attributes read null when empty (SPEC §1), so a blank optional line is stored as one.
        for name in _OPTIONAL:
            value = data.get(name)
            if isinstance(value, str) and not value.strip():
                data[name] = None
        return data
