"""marshmallow schemas (our Glue fields) as JSON Schema, for the OpenAPI document."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields

from service.validation import _DATE, _EMAIL, Date, Email, StrictBool, Text

# "Not blank": at least one character that is not whitespace (Text rejects " ").
_NOT_BLANK = r"\S"


def field_schema(field: fields.Field) -> dict[str, Any]:
    """The JSON Schema of one field: what the field accepts without a 901."""
    out: dict[str, Any]
    if isinstance(field, Email):
        out = {"type": "string", "maxLength": field.max_len or 100, "pattern": _EMAIL.pattern}
    elif isinstance(field, Text):
        out = _text(field)
    elif _choices(field) is not None:
        out = {"type": "string", "enum": list(_choices(field) or ())}
    elif isinstance(field, Date):
        out = {"type": "string", "format": "date", "pattern": _DATE.pattern}
    elif isinstance(field, StrictBool):
        out = {"const": True} if field.must_be_true else {"type": "boolean"}
    elif isinstance(field, fields.Boolean):
        out = {"type": "boolean"}
    elif isinstance(field, fields.Integer):
        out = {"type": "integer"}
    elif isinstance(field, fields.Number):
        out = {"type": "number"}
    elif isinstance(field, fields.String):
        out = {"type": "string"}
    elif isinstance(field, fields.List) and field.inner is not None:
        out = {"type": "array", "items": field_schema(field.inner)}
    elif isinstance(field, fields.Nested) and isinstance(field.schema, Schema):
        out = attributes_schema(field.schema)
    else:
        out = {}
    if field.allow_none:
        out = _nullable(out)
    if field.metadata.get("description"):
        out["description"] = field.metadata["description"]
    return out


def _choices(field: fields.Field) -> tuple[str, ...] | None:
    # Text(choices=...) per instance; a dedicated field (Gender) as a class constant.
    return getattr(field, "choices", None) or getattr(field, "CHOICES", None)


def _text(field: Text) -> dict[str, Any]:
    if field.choices is not None:
        return {"type": "string", "enum": list(field.choices)}
    out: dict[str, Any] = {"type": "string"}
    low = field.min_len or 0
    if not field.blank_ok:
        low = max(low, 1)
        out["pattern"] = _NOT_BLANK
    if low:
        out["minLength"] = low
    if field.max_len is not None:
        out["maxLength"] = field.max_len
    return out


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if "enum" in schema:
        return {**schema, "type": ["string", "null"], "enum": [*schema["enum"], None]}
    if "type" in schema and isinstance(schema["type"], str):
        return {**schema, "type": [schema["type"], "null"]}
    if "const" in schema or not schema:
        return {"anyOf": [schema, {"type": "null"}]} if schema else {}
    return {"anyOf": [schema, {"type": "null"}]}


def attributes_schema(schema: Schema | type[Schema], *, partial: bool = False) -> dict[str, Any]:
    """An object schema keyed by attribute name (data_key); `partial` drops `required`."""
    instance = schema() if isinstance(schema, type) else schema
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, field in instance.fields.items():
        if field.dump_only:
            continue
        key = field.data_key or name
        properties[key] = field_schema(field)
        if field.required and not partial:
            required.append(key)
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = required
    return out
