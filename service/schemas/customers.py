"""Customer attributes, in the order Glue reports their violations."""

from __future__ import annotations

from service.validation import (
    Date,
    Email,
    GlueSchema,
    StrictBool,
    Text,
    gender_field,
    salutation_field,
)


class ProfileSchema(GlueSchema):
    """The editable profile (PATCH takes any subset)."""

    salutation = salutation_field(required=True)
    first_name = Text(data_key="firstName", required=True, min_len=1, max_len=100)
    last_name = Text(data_key="lastName", required=True, min_len=1, max_len=100)
    email = Email(required=True)
    gender = gender_field()
    date_of_birth = Date(data_key="dateOfBirth", allow_none=True)


class RegistrationSchema(ProfileSchema):
    """Registration: the profile plus password, confirmation and terms."""

    password = Text(required=True, min_len=8, max_len=64)
    confirm_password = Text(data_key="confirmPassword", required=True)
    accepted_terms = StrictBool(data_key="acceptedTerms", required=True, must_be_true=True)
