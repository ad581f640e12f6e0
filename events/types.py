"""Typed events: a base class, the registry of event types and the upcasters."""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, TypeVar

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]

# A cursor's parts are bound as xid8 (unsigned 64-bit) and bigint: a larger
# number is no position at all, and the driver would refuse to send it.
MAX_TRANSACTION_ID = 2**64 - 1
MAX_POSITION = 2**63 - 1


@dataclass(frozen=True)
class Event:
    """Base of every event class; subclasses are frozen dataclasses of JSON-able fields."""

    type_name: ClassVar[str] = ""
    schema_version: ClassVar[int] = 1
    # Fields holding personal data: stored encrypted with the stream's data key.
    personal: ClassVar[frozenset[str]] = frozenset()

    def to_payload(self) -> Payload:
        """The event's fields as a JSON-able dict."""
        return {name: getattr(self, name) for name in _field_names(type(self))}

    @classmethod
    def from_payload(cls: type[E], payload: Payload) -> E:
        """Build the event from a (current-version) payload; unknown keys are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in payload.items() if k in names})


E = TypeVar("E", bound=Event)


@functools.cache
def _field_names(cls: type[Event]) -> tuple[str, ...]:
    # dataclasses.fields() is slow enough to show in an append's profile.
    return tuple(f.name for f in dataclasses.fields(cls))


@dataclass(frozen=True)
class NewEvent:
    """An event about to be appended, with its id fixed so a retry is idempotent."""

    event: Event
    event_id: uuid.UUID = dataclasses.field(default_factory=uuid.uuid4)


@dataclass(frozen=True)
class RecordedEvent:
    """An event as the log holds it, decrypted and upcast to the current schema version."""

    position: int
    transaction_id: int
    stream_id: str
    version: int
    event_id: uuid.UUID
    event_type: str
    schema_version: int
    payload: Payload
    metadata: Payload
    recorded_at: datetime
    erased: bool = False

    @property
    def cursor(self) -> str:
        """The opaque, totally ordered position of this event in the global feed."""
        return format_cursor(self.transaction_id, self.position)

    def to_event(self, registry: EventRegistry) -> Event:
        """The typed event object for this record."""
        return registry.cls(self.event_type).from_payload(self.payload)


def format_cursor(transaction_id: int, position: int) -> str:
    """Render a (transaction id, position) pair as the feed cursor."""
    return f"{transaction_id}-{position}"


def is_decimal(text: str) -> bool:
    """Plain ASCII digits only: int() also reads signs, spaces, "_" and digits such as
    fullwidth ones, none of which a client's number should hold."""
    return text.isascii() and text.isdigit()


def parse_cursor(cursor: str) -> tuple[int, int]:
    """Parse a feed cursor; raises ValueError when it is not one."""
    tx, sep, pos = cursor.partition("-")
    if not sep or not is_decimal(tx) or not is_decimal(pos):
        raise ValueError(f"not a cursor: {cursor!r}")
    transaction_id, position = int(tx), int(pos)
    if transaction_id > MAX_TRANSACTION_ID or position > MAX_POSITION:
        raise ValueError(f"not a cursor: {cursor!r}")
    return transaction_id, position


class UnknownEventType(LookupError):
    """A stored event type no class is registered for."""


class EventRegistry:
    """Maps stored type names to event classes and upgrades old payload versions."""

    def __init__(self) -> None:
        self._classes: dict[str, type[Event]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}

    def register(self, cls: type[E]) -> type[E]:
        """Register an event class (usable as a class decorator)."""
        if not cls.type_name:
            raise ValueError(f"{cls.__name__} has no type_name")
        self._classes[cls.type_name] = cls
        return cls

    def upcaster(self, type_name: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Register a function turning version `from_version` of a payload into the next one."""

        def decorate(fn: Upcaster) -> Upcaster:
            self._upcasters[(type_name, from_version)] = fn
            return fn

        return decorate

    def cls(self, type_name: str) -> type[Event]:
        """The class registered for a type name."""
        try:
            return self._classes[type_name]
        except KeyError:
            raise UnknownEventType(type_name) from None

    def personal_fields(self, type_name: str) -> frozenset[str]:
        """Personal fields of a type (empty for unknown types: nothing to decrypt)."""
        cls = self._classes.get(type_name)
        return cls.personal if cls else frozenset()

    def current_version(self, type_name: str) -> int:
        """The schema version new events of this type are written with."""
        cls = self._classes.get(type_name)
        return cls.schema_version if cls else 1

    def upcast(self, type_name: str, version: int, payload: Payload) -> tuple[int, Payload]:
        """Apply upcasters until the payload is at the current version; never mutates input."""
        target = self.current_version(type_name)
        while version < target:
            step = self._upcasters.get((type_name, version))
            if step is None:
                raise LookupError(f"no upcaster for {type_name} v{version}")
            payload = step(dict(payload))
            version += 1
        return version, payload

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._classes

    @property
    def type_names(self) -> list[str]:
        """Every registered type name."""
        return sorted(self._classes)
