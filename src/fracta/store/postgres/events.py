"""The event log in PostgreSQL: a row per event; its id is the cursor.

A bigserial alone would let a reader miss events: ids are taken at insert, but transactions
commit in any order, so a reader could see id 8 before 7 commits and move its cursor past 7.
Each append therefore takes a transaction-level advisory lock before it takes its id and keeps
it until it commits: appends commit in id order, and once a reader sees an id, every smaller
one is committed (or rolled back, never to appear).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ...records import Event
from ..base import EVENTS
from .db import CHANNEL, Database

APPEND_LOCK = 0x66726163_74612D65  # pg_advisory_xact_lock key serialising appends ("fracta-e")
_BATCH = 1000  # rows fetched per query while following the log


def _event(row: tuple[Any, ...]) -> Event:
    event_id, data = row
    # The cursor before an event is the id of the one before it (or any id between): reading
    # from `end` gives exactly the events after this one, and read(0) gives them all.
    return Event(offset=event_id - 1, end=event_id, data=data if isinstance(data, dict) else {"event": "corrupt"})


def _batch(after: int, size: int) -> Callable[[psycopg.Connection[Any]], list[tuple[Any, ...]]]:
    def work(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
        return conn.execute("SELECT id, data FROM events WHERE id > %s ORDER BY id LIMIT %s", (after, size)).fetchall()

    return work


class PostgresEvents:
    def __init__(self, db: Database) -> None:
        self.db = db

    def append(self, line: dict[str, Any]) -> None:
        """One statement, so one round trip in autocommit (an explicit transaction of three took
        five: 2.4x the time on this machine): the row the INSERT reads comes from the lock's
        SELECT, so its id (the column default) is taken after the lock, which the statement's
        own transaction holds until it commits; the NOTIFY goes out with that commit."""
        self.db.single(
            lambda c: c.execute(
                "WITH locked AS (SELECT pg_advisory_xact_lock(%s)),"
                " added AS (INSERT INTO events (data) SELECT %s FROM locked RETURNING id)"
                " SELECT pg_notify(%s, %s) FROM added",
                (APPEND_LOCK, Jsonb(line), CHANNEL, EVENTS),
            )
        )

    def read(self, since: int, limit: int | None) -> Iterator[Event]:
        cursor, left = since, limit
        while left is None or left > 0:
            size = _BATCH if left is None else min(left, _BATCH)
            rows = self.db.single(_batch(cursor, size))
            for row in rows:
                yield _event(row)
            if len(rows) < size:
                return
            cursor = rows[-1][0]
            if left is not None:
                left -= len(rows)

    def about(self, agents: Collection[str], kinds: Collection[str], since: str) -> Iterator[Event]:
        """By the events_by_agent index, in batches (a reader may stop early)."""
        who, what, after = list(agents), list(kinds), 0
        query = (
            "SELECT id, data FROM events WHERE data->>'agent' = ANY(%s) AND data->>'event' = ANY(%s)"
            " AND data->>'ts' >= %s AND id > %s ORDER BY id LIMIT %s"
        )
        while who and what:
            rows = self.db.single(lambda c: c.execute(query, (who, what, since, after, _BATCH)).fetchall())  # noqa: B023
            yield from (_event(row) for row in rows)
            if len(rows) < _BATCH:
                return
            after = rows[-1][0]

    def tail(self, n: int) -> list[Event]:
        if n <= 0:
            return []
        rows = self.db.single(
            lambda c: c.execute("SELECT id, data FROM events ORDER BY id DESC LIMIT %s", (n,)).fetchall()
        )
        return [_event(r) for r in reversed(rows)]
