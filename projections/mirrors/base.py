"""What every mirror is made of: the Mirror class, its fingerprint, row helpers."""

from __future__ import annotations

import hashlib
import inspect
import sys
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from events.types import RecordedEvent
from projections.registry import Projector

Row = dict[str, Any]
Tables = dict[str, dict[Hashable, Row]]  # table → primary key → row
MirrorHandler = Callable[[Tables, RecordedEvent], None]


@dataclass
class Mirror:
    """The Python twin of one projector: same tables, same event types, same rows."""

    name: str
    columns: dict[str, tuple[str, ...]]  # table → the columns the projector writes
    fingerprint: str  # of the projector module it mirrors (see `fingerprint`)
    handlers: dict[str, MirrorHandler] = field(default_factory=dict)

    def on(self, *type_names: str) -> Callable[[MirrorHandler], MirrorHandler]:
        """Register a handler for event types (decorator)."""

        def decorate(fn: MirrorHandler) -> MirrorHandler:
            for type_name in type_names:
                self.handlers[type_name] = fn
            return fn

        return decorate

    def mirrors(self, projector: Projector) -> bool:
        """Whether this mirror was written for the projector as it is now."""
        return (
            projector.name == self.name
            and set(projector.tables) == set(self.columns)
            and set(projector.handlers) == set(self.handlers)
            and fingerprint(projector) == self.fingerprint
        )


def fingerprint(projector: Projector) -> str:
    """A digest of the source of the module defining the projector's handlers."""
    modules = sorted({h.__module__ for h in projector.handlers.values()})
    source = "".join(inspect.getsource(sys.modules[m]) for m in modules)
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def reference_of(event: RecordedEvent) -> str:
    """The customer reference of an event in a customer stream."""
    return event.stream_id.removeprefix("customer-")


def date_of(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def insert(rows: dict[Hashable, Row], key: Hashable, row: Row) -> None:
    if key in rows:  # the table's primary key would refuse it
        raise ValueError(f"duplicate key {key!r}")
    rows[key] = row


def delete_where(rows: dict[Hashable, Row], column: str, value: Any) -> None:
    for key in [k for k, r in rows.items() if r[column] == value]:
        del rows[key]
