"""Compact JSON for every layer: orjson where it can, the standard library where it can't.

JSON is on every hot path (request bodies, response documents, jsonb payloads, sealed
personal fields, log lines); orjson does the same work in a fraction of the time.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

JSONDecodeError = orjson.JSONDecodeError  # a json.JSONDecodeError, hence a ValueError


def dumps_bytes(value: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """Compact UTF-8 JSON (`default` turns what JSON lacks into what it has). Integers
    beyond 64 bits and non-string keys, which orjson refuses, go through the
    standard library instead."""
    try:
        return orjson.dumps(value, default=default)
    except TypeError:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=default)
        return text.encode()


def dumps(value: Any, default: Callable[[Any], Any] | None = None) -> str:
    """Compact JSON text."""
    return dumps_bytes(value, default).decode()


def loads(data: bytes | str) -> Any:
    """Parse strict JSON (no NaN or Infinity, no lone surrogates: JSONDecodeError)."""
    return orjson.loads(data)
