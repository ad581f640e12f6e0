"""marshmallow fields and schemas that speak Glue's validation messages (code 901)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields

from service.errors import GENDER_INVALID, GlueError, validation_failed

MISSING = "This field is missing."
BLANK = "This value should not be blank."
INVALID_EMAIL = "This value is not a valid email address."
INVALID_CHOICE = "The value you selected is not a valid choice."
MUST_BE_TRUE = "This value should be true."
NOT_BOOL = "This value should be of type bool."
NOT_STRING = "This value should be of type string."
INVALID_DATE = "This value is not a valid date."

# Deliberately plain: one @, no spaces, a dot in the domain (what Symfony's
# "loose" Email constraint accepts, which is what Glue uses).
_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def too_short(n: int) -> str:
    """Glue's message for a string under its minimum length."""
    return f"This value is too short. It should have {n} characters or more."


def too_long(n: int) -> str:
    """Glue's message for a string over its maximum length."""
    return f"This value is too long. It should have {n} characters or less."


_COMMON = {"required": MISSING, "null": BLANK}


class Text(fields.Field):
    """A string that must not be blank (unless optional) and fits a length range."""

    def __init__(
        self,
        *,
        min_len: int | None = None,
        max_len: int | None = None,
        blank_ok: bool = False,
        choices: tuple[str, ...] | None = None,
        choice_message: str = INVALID_CHOICE,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("error_messages", _COMMON)
        super().__init__(**kwargs)
        self.min_len = min_len
        self.max_len = max_len
        self.blank_ok = blank_ok
        self.choices = choices
        self.choice_message = choice_message

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            # For a choice, a number or a list is just one more value not on the list.
            raise ValidationError(self.choice_message if self.choices is not None else NOT_STRING)
        if value.strip() == "":
            if self.blank_ok:
                return value
            raise ValidationError(BLANK)
        if self.choices is not None and value not in self.choices:
            raise ValidationError(self.choice_message)
        if self.min_len is not None and len(value) < self.min_len:
            raise ValidationError(too_short(self.min_len))
        if self.max_len is not None and len(value) > self.max_len:
            raise ValidationError(too_long(self.max_len))
        return value


class Email(Text):
    """An email address of at most 100 characters."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_len=100, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, str) and value.strip() and not _EMAIL.fullmatch(value):
            raise ValidationError(INVALID_EMAIL)
        return super()._deserialize(value, attr, data, **kwargs)


class Date(fields.Field):
    """A calendar date written YYYY-MM-DD."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("error_messages", _COMMON)
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str) or not _DATE.fullmatch(value):
            raise ValidationError(INVALID_DATE)
        try:
            return dt.date.fromisoformat(value).isoformat()
        except ValueError:
            raise ValidationError(INVALID_DATE) from None


class StrictBool(fields.Field):
    """A JSON boolean, nothing else; `must_be_true` for terms acceptance."""

    def __init__(self, *, must_be_true: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("error_messages", _COMMON)
        super().__init__(**kwargs)
        self.must_be_true = must_be_true

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if self.must_be_true and value is not True:
            raise ValidationError(MUST_BE_TRUE)
        if not isinstance(value, bool):
            raise ValidationError(NOT_BOOL)
        return value


class GlueSchema(Schema):
    """A schema whose failures become the ordered 901 list: one error per field."""

    class Meta:
        unknown = EXCLUDE

    def check(self, attributes: dict[str, Any], *, partial: bool = False) -> dict[str, Any]:
        """Validate and load attributes, or raise the 422 GlueError listing every violation.

        With `partial`, absent fields are not required (PATCH); a present `null` is
        still checked. Returns only the fields present, keyed by attribute name.
        """
        try:
            return self.load(attributes, partial=partial)
        except ValidationError as exc:
            messages = exc.messages if isinstance(exc.messages, dict) else {}
            violations = []
            for name, field in self.fields.items():
                key = field.data_key or name
                found = messages.get(key)
                if found:
                    first = found[0] if isinstance(found, list) else str(found)
                    violations.append((key, str(first)))
            raise validation_failed(violations) from None


class Gender(fields.Field):
    """Male, Female or null; anything else (blank, other case, not a string) is code 414."""

    CHOICES = ("Male", "Female")

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("error_messages", _COMMON)
        super().__init__(allow_none=True, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if value not in self.CHOICES:
            raise ValidationError(GENDER_INVALID.detail)
        return str(value)


def gender_field(**kwargs: Any) -> Gender:
    """Male/Female or null; anything else answers code 414 in the gender slot."""
    return Gender(**kwargs)


def salutation_field(**kwargs: Any) -> Text:
    """Mr, Mrs, Ms or Dr."""
    return Text(choices=("Mr", "Mrs", "Ms", "Dr"), **kwargs)


def raise_if(violations: list[tuple[str, str]]) -> None:
    """Raise the 901 document when there is any violation."""
    if violations:
        raise validation_failed(violations)


__all__ = [
    "Date",
    "Email",
    "Gender",
    "GlueError",
    "GlueSchema",
    "StrictBool",
    "Text",
    "gender_field",
    "raise_if",
    "salutation_field",
]
