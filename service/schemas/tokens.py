"""Refresh-token attributes."""

from __future__ import annotations

from service.validation import GlueSchema, Text


class RefreshTokenSchema(GlueSchema):
    """POST /refresh-tokens."""

    refresh_token = Text(data_key="refreshToken", required=True)
