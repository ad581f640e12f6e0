"""Login and confirmation attributes."""

from __future__ import annotations

from service.validation import GlueSchema, Text


class LoginSchema(GlueSchema):
    """POST /access-tokens."""

    username = Text(required=True)
    password = Text(required=True)


class ConfirmationSchema(GlueSchema):
    """POST /customer-confirmation."""

    registration_key = Text(data_key="registrationKey", required=True)
