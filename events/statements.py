"""The event store's SQL: the one-statement append and the fenced reads."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any


# One statement: it reads the stream head, checks the expected version and the
# data key, and inserts, so that an append outside a transaction is one round trip.
# A sealed payload is written only while the wrapped key it was sealed with is
# still the stream's live key: a writer's cached key may have been erased by
# another process, or rolled back with the transaction that created it.
#
# The writer guard keeps a stream's events in version order in the feed, which
# is ordered by transaction id. A transaction id is handed out at a transaction's
# first write, not at commit: one that wrote something else before the stream's
# last event committed holds a lower id, and appending the next version with it
# would put that version first in the feed. It is refused as a conflict; the
# retry, in a new transaction, gets a higher id. (When the append is the
# transaction's first write, its id is assigned only now, after the head it
# builds on committed, so it is always higher.)
def _guards(expected: str, key_check: str) -> str:
    return f"""
WHERE ({expected} IS NULL OR head.current = {expected})
  AND {key_check}
  AND (head.writer IS NULL OR pg_current_xact_id_if_assigned() IS NULL
       OR pg_current_xact_id_if_assigned() >= head.writer)
"""


def _key_is_live(stream: str, sealed_with: str) -> str:
    return f"""({sealed_with} IS NULL OR EXISTS (
        SELECT 1 FROM data_keys k WHERE k.stream_id = {stream} AND k.wrapped_key = {sealed_with}))"""


def _head(stream: str) -> str:
    return f"""(
    SELECT coalesce(last.version, 0) AS current, last.transaction_id AS writer
    FROM (SELECT) AS one LEFT JOIN LATERAL (
        SELECT version, transaction_id FROM events WHERE stream_id = {stream}
        ORDER BY version DESC LIMIT 1
    ) AS last ON true
) AS head"""


GUARDS = _guards("$2::int", _key_is_live("$1", "$8::bytea"))
HEAD = _head("$1")
INSERT = "INSERT INTO events (stream_id, version, event_id, event_type, schema_version, payload, metadata)"
RETURNING = "RETURNING position, transaction_id, version, event_id, recorded_at"

APPEND = f"""
{INSERT}
SELECT $1, head.current + n.ord, n.event_id, n.event_type, n.schema_version, n.payload, $7
FROM {HEAD},
     unnest($3::uuid[], $4::text[], $5::int[], $6::jsonb[])
        WITH ORDINALITY AS n(event_id, event_type, schema_version, payload, ord)
{GUARDS}
ORDER BY n.ord
{RETURNING}
"""

# Single-event appends to distinct streams from concurrent writers, as one statement
# and one commit (events/groupcommit.py): each row is checked against its own stream's
# head and key; a row that fails its checks is left out, the others are written.
APPEND_GROUP = f"""
{INSERT}
SELECT r.stream_id, head.current + 1, r.event_id, r.event_type, r.schema_version, r.payload,
       r.metadata
FROM unnest($1::text[], $2::int[], $3::uuid[], $4::text[], $5::int[], $6::jsonb[], $7::jsonb[],
            $8::bytea[])
        WITH ORDINALITY AS r(stream_id, expected, event_id, event_type, schema_version, payload,
                             metadata, sealed_with, ord)
CROSS JOIN LATERAL {_head("r.stream_id")}
{_guards("r.expected", _key_is_live("r.stream_id", "r.sealed_with"))}
ORDER BY r.ord
{RETURNING}
"""


# The same for the common single event, without arrays: measurably cheaper on
# both sides (no unnest and sort in the server, no array encoding in the client).
def _append_one(guards: str) -> str:
    return f"""
{INSERT}
SELECT $1, head.current + 1, $3::uuid, $4::text, $5::int, $6::jsonb, $7
FROM {HEAD}
{guards}
{RETURNING}
"""


APPEND_ONE = _append_one(GUARDS)

# APPEND_ONE for a stream's first event that also creates the stream's data key ($8,
# the wrapped key the payload was sealed with): the key is valid only if this very
# statement inserts it. If any key row exists already (another first writer won, or
# the stream was erased), nothing is written; the caller learns the live key and
# retries with it. The key and the event commit or vanish together.
_NEW_KEY = """new_key AS (
    INSERT INTO data_keys (stream_id, wrapped_key) SELECT $1, $8::bytea WHERE $8 IS NOT NULL
    ON CONFLICT (stream_id) DO NOTHING RETURNING 1
), """
APPEND_ONE_NEW_KEY = _append_one(_guards("$2::int", "EXISTS (SELECT 1 FROM new_key)"))

# An append and the statements of its inline projection, as ONE statement: run
# outside a transaction it is its own (implicit) one, so a command costs one round
# trip instead of BEGIN, INSERT, the projection's statements and COMMIT. The
# projection's statements are data-modifying CTEs; PostgreSQL runs them to
# completion whether or not the query reads them. When the append's checks refuse
# it, `appended` is empty and events_append_written raises (SQLSTATE GE001), which
# undoes the projection's writes too: the aggregate always yields its one row, so
# the check always runs. Single events only (see compose_one).
REFUSED = "GE001"
_COMPOSED = """
WITH {new_key}appended AS ({append}){projection}
SELECT events_append_written(count(*)) AS written,
       (array_agg(position))[1] AS position,
       (array_agg(transaction_id))[1] AS transaction_id,
       (array_agg(version))[1] AS version,
       (array_agg(event_id))[1] AS event_id,
       (array_agg(recorded_at))[1] AS recorded_at
FROM appended
"""
_PARAMETER = re.compile(r"\$(\d+)")
_TARGET = re.compile(r"^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+([a-z_][a-z0-9_]*)\b", re.I)
APPEND_ARGUMENTS = 8  # $1..$8 of APPEND_ONE


def compose_one(
    statements: Sequence[tuple[str, Sequence[Any]]], now: object, new_key: bool = False
) -> tuple[str, list[Any]] | None:
    """APPEND_ONE (APPEND_ONE_NEW_KEY with `new_key`) with `statements` folded in:
    (SQL, their arguments, to follow the append's eight), or None when they cannot
    share one statement.

    An argument that `is now` becomes now(): the transaction's start, which is what
    the append writes as recorded_at. Every statement must write its own table and
    no statement may name another's: in one statement all of them see the same
    snapshot, none sees another's writes, and a row written twice is an error.
    """
    shape = tuple(
        (text, len(values), tuple(i for i, value in enumerate(values) if value is now))
        for text, values in statements
    )
    text = _composed(shape, new_key)
    if text is None:
        return None
    return text, [value for _, values in statements for value in values if value is not now]


@functools.lru_cache(maxsize=512)
def _composed(shape: tuple[tuple[str, int, tuple[int, ...]], ...], new_key: bool) -> str | None:
    # Cached by the statements' texts and where NOW stands: few shapes, many appends.
    targets = []
    for text, _, _ in shape:
        match = _TARGET.match(text)
        if match is None:
            return None
        targets.append(match.group(1).lower())
    if len(set(targets)) != len(targets) or (new_key and "data_keys" in targets):
        return None
    for (text, _, _), target in zip(shape, targets, strict=True):
        words = set(re.findall(r"[a-z_][a-z0-9_]*", text.lower()))
        if any(other in words for other in targets if other != target):
            return None
    used = APPEND_ARGUMENTS
    ctes = []
    for i, (text, count, nows) in enumerate(shape):
        if max(map(int, _PARAMETER.findall(text)), default=0) != count:
            return None  # an argument without its $n, or a $n without its argument
        numbers: dict[str, str] = {}
        for n in range(1, count + 1):
            if n - 1 in nows:
                numbers[str(n)] = "now()"
            else:
                used += 1
                numbers[str(n)] = f"${used}"
        ctes.append(f",\nprojected_{i} AS ({_renumber(text, numbers)})")
    return _COMPOSED.format(
        new_key=_NEW_KEY if new_key else "",
        append=APPEND_ONE_NEW_KEY if new_key else APPEND_ONE,
        projection="".join(ctes),
    )


def _renumber(text: str, numbers: dict[str, str]) -> str:
    return _PARAMETER.sub(lambda m: numbers[m.group(1)], text)


# Why an append wrote nothing, in one round trip (only on that unhappy path).
WHY_NOT = """
SELECT (SELECT count(*) FROM events WHERE event_id = ANY($2::uuid[])) AS known,
       (SELECT wrapped_key FROM data_keys WHERE stream_id = $1) AS wrapped,
       EXISTS (SELECT 1 FROM data_keys WHERE stream_id = $1 AND wrapped_key IS NULL) AS erased
"""


COLUMNS = """e.position, e.transaction_id, e.stream_id, e.version, e.event_id, e.event_type,
    e.schema_version, e.payload, e.metadata, e.recorded_at, k.wrapped_key"""

# The fence. Positions come from a sequence, so they are handed out in insert
# order, not commit order: a transaction holding position 10 can commit after
# the one holding 11, and a reader that had already moved past 11 would never
# see 10. Instead, the order is (writer transaction id, position), and a reader
# only looks at events whose writer is older than the oldest transaction still
# running (pg_snapshot_xmin of its own snapshot). Every such writer has finished,
# committed or not, so nothing can appear later "behind" what was returned; the
# fence and the rows come from one statement and therefore one snapshot.
# (A stream's events keep their version order in the feed: see GUARDS.)
FENCE = "AND e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())"

# One statement per filter, each with a plan that suits it: the global order
# index for the whole feed, one stream's rows through its own index. A prepared
# statement soon runs on one generic plan, which for "event_type = ANY($n)"
# assumes a common type and scans the global order index: for a rare type that
# is every event since the cursor. So the types are written into the statement
# as literals (one prepared statement per set of types, few in practice), and
# the planner picks the type index when the statistics say the types are rare.
READ_ALL = {
    "all": f"""
SELECT {COLUMNS}
FROM events e LEFT JOIN data_keys k ON k.stream_id = e.stream_id
WHERE (e.transaction_id, e.position) > ($1::xid8, $2::bigint) {FENCE}
ORDER BY e.transaction_id, e.position
LIMIT $3
""",
    "types": f"""
SELECT {COLUMNS}
FROM events e LEFT JOIN data_keys k ON k.stream_id = e.stream_id
WHERE e.event_type = ANY(ARRAY[{{types}}]::text[])
  AND (e.transaction_id, e.position) > ($1::xid8, $2::bigint) {FENCE}
ORDER BY e.transaction_id, e.position
LIMIT $3
""",
    "stream": f"""
SELECT {COLUMNS}
FROM events e LEFT JOIN data_keys k ON k.stream_id = e.stream_id
WHERE e.stream_id = $3::text
  AND (e.transaction_id, e.position) > ($1::xid8, $2::bigint) {FENCE}
  AND ($4::text[] IS NULL OR e.event_type = ANY($4::text[]))
ORDER BY e.transaction_id, e.position
LIMIT $5
""",
}

# The same reads without the fence, for a reader that has excluded in-flight appends
# itself: one holding LOCK TABLE events IN SHARE MODE, or reading inside one
# REPEATABLE READ snapshot (a rebuild's final catch-up). Anywhere else it can skip.
READ_ALL_UNFENCED = {kind: sql.replace(FENCE, "") for kind, sql in READ_ALL.items()}
assert all(READ_ALL_UNFENCED[k] != READ_ALL[k] for k in READ_ALL)

# Whether committed events lie past a cursor: asked by a follower right after a read
# that reached the end. Any it finds were held back by the fence when the read ran (a
# transaction that began before they committed still ran) or committed since; the
# transaction that held them back may end without waking anyone (it appended another
# type, or no event at all), so the follower looks again soon. Deliberately without
# the fence: asked with it, a fence that lifted between the read and this question
# would hide them both times.
# Like the typed reads, the types are literals: a generic plan for "$3 IS NULL OR
# event_type = ANY($3)" scans far more than the few rows past the cursor.
_PENDING = """
SELECT EXISTS (
    SELECT 1 FROM events e
    WHERE (e.transaction_id, e.position) > ($1::xid8, $2::bigint){types}
)
"""


def pending(types: Sequence[str] | None) -> str:
    """The PENDING question for these types (all when None)."""
    key = _type_key(types or ())
    clause = f"\n      AND e.event_type = ANY(ARRAY[{_literals(key)}]::text[])" if key else ""
    return _with_types(_PENDING, clause)


def typed_read(types: Sequence[str], fenced: bool) -> str:
    """The "types" read with these types as literals."""
    template = (READ_ALL if fenced else READ_ALL_UNFENCED)["types"]
    return _with_types(template, _literals(_type_key(types)))


def _type_key(types: Sequence[str]) -> tuple[str, ...]:
    return tuple(sorted(set(types)))


@functools.lru_cache(maxsize=256)
def _literals(types: tuple[str, ...]) -> str:
    return ", ".join(map(literal, types))


@functools.lru_cache(maxsize=512)
def _with_types(template: str, types: str) -> str:
    # One prepared statement per set of types (few in practice), built once.
    return template.replace("{types}", types)


def literal(text: str) -> str:
    """A SQL string literal, safe whatever standard_conforming_strings says."""
    if "\x00" in text:
        raise ValueError("an event type cannot contain NUL")
    return "E'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


READ_STREAM = f"""
SELECT {COLUMNS}
FROM events e LEFT JOIN data_keys k ON k.stream_id = e.stream_id
WHERE e.stream_id = $1
  AND ($2::int IS NULL OR e.version <= $2::int)
  AND ($3::timestamptz IS NULL OR e.recorded_at <= $3::timestamptz)
  AND e.version > $4::int
ORDER BY e.version
"""

BY_EVENT_ID = f"""
SELECT {COLUMNS}
FROM events e LEFT JOIN data_keys k ON k.stream_id = e.stream_id
WHERE e.event_id = ANY($1::uuid[])
ORDER BY e.position
"""
