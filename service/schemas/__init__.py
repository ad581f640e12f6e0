"""Request attribute schemas (marshmallow), one module per resource."""

from __future__ import annotations

from service.schemas.auth import ConfirmationSchema, LoginSchema
from service.schemas.customers import ProfileSchema, RegistrationSchema

__all__ = ["ConfirmationSchema", "LoginSchema", "ProfileSchema", "RegistrationSchema"]
