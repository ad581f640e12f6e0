"""Recorded events as the feed and the audit trail show them (`type: events`)."""

from __future__ import annotations

from typing import Any

from events.types import RecordedEvent
from service.jsonapi import timestamp

# Secrets never leave the service, whoever asks: a password hash is stored
# encrypted like personal data, but handing it out would invite offline guessing.
SECRET_FIELDS = frozenset({"password_hash"})


def event_item(event: RecordedEvent) -> dict[str, Any]:
    """One `events` resource object; its id is the event's feed cursor."""
    return {
        "type": "events",
        "id": event.cursor,
        "attributes": {
            "position": event.position,
            "stream": event.stream_id,
            "version": event.version,
            "eventType": event.event_type,
            "schemaVersion": event.schema_version,
            "recordedAt": timestamp(event.recorded_at),
            # Decrypted and upcast by the store; personal fields are None once erased.
            "payload": {k: v for k, v in event.payload.items() if k not in SECRET_FIELDS},
            "metadata": event.metadata,
        },
    }
