"""Password change, forgotten-password and restore attributes, in Glue's violation order."""

from __future__ import annotations

from service.validation import Email, GlueSchema, Text

# The policy registration applies too: 8..64 characters (printable: checked by the route, 420).
MIN_PASSWORD = 8
MAX_PASSWORD = 64


class PasswordChangeSchema(GlueSchema):
    """PATCH /customer-password/{ref}."""

    password = Text(required=True)
    new_password = Text(
        data_key="newPassword", required=True, min_len=MIN_PASSWORD, max_len=MAX_PASSWORD
    )
    confirm_password = Text(data_key="confirmPassword", required=True)


class ForgottenPasswordSchema(GlueSchema):
    """POST /customer-forgotten-password."""

    email = Email(required=True)


class RestorePasswordSchema(GlueSchema):
    """PATCH /customer-restore-password/{id}."""

    restore_password_key = Text(data_key="restorePasswordKey", required=True)
    password = Text(required=True, min_len=MIN_PASSWORD, max_len=MAX_PASSWORD)
    confirm_password = Text(data_key="confirmPassword", required=True)
