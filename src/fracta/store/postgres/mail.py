"""Mailboxes in PostgreSQL: a row per message, new -> pending (held by a reader) -> read.

The same exactly-once rules as the files backend (src/fracta/store/files/, README "Messages:
exactly once"): a read hands messages to a holder until a later read (or acknowledge) of that
reader marks them read; reads of one inbox take turns on the inbox's row lock, each in one
transaction, so a repeated read sees everything the read it repeats handed out.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import psycopg

from ...errors import AgentNotFound, IdempotencyConflict
from ...records import Delivery, Message
from ..base import INBOX, Held
from .db import Database, notify

# Retired holders kept per inbox, as the files backend's inbox/acked (about the last 2,000): a
# copy of a read run later than that is no longer recognised, and what it claims waits for the
# redelivery timeout, delayed but not lost.
RETIRED_KEEP = 2000
_TRIM_EVERY = 64  # trim an inbox's retired holders on every 64th retirement (by sequence number)

_COLUMNS = "id, sender, recipient, sent_at, body, subject, reply_to, dedup_key"


def _message(row: tuple[Any, ...], read: bool) -> Message:
    msg_id, sender, to, sent_at, body, subject, reply_to, dedup_key = row[:8]
    return Message(msg_id, sender, to, sent_at, body, subject, reply_to, read=read, dedup_key=dedup_key)


_STATES = {"new": "stored", "pending": "handed", "read": "read"}


def _delivery(row: tuple[Any, ...]) -> Delivery:
    state, held_ns, read_ns, alerted_ns = row[8:12]
    at = held_ns if state == "pending" else read_ns
    found = _message(row, read=state == "read")
    return Delivery(found, _STATES[state], int(at) if at is not None else None, alerted_ns is not None)


def sent_ns(message_id: str) -> int:
    """Message ids start with the send time in nanoseconds (the core's ids)."""
    head = message_id.split(".", 1)[0]
    return int(head) if head.isdigit() else 0


def _no_inbox(name: str) -> AgentNotFound:
    return AgentNotFound(f"no agent named {name!r}", "run fracta list to see the agents")


def _lock_inbox(conn: psycopg.Connection[Any], name: str) -> None:
    """Take the inbox's turn: its row lock, held until the transaction ends (NO KEY: deliveries,
    whose foreign key only shares the row, go on meanwhile)."""
    if conn.execute("SELECT 1 FROM inboxes WHERE name = %s FOR NO KEY UPDATE", (name,)).fetchone() is None:
        raise _no_inbox(name)


class PostgresMail:
    def __init__(self, db: Database) -> None:
        self.db = db

    def deliver(self, msg: Message, window: float | None) -> Message:
        def work(conn: psycopg.Connection[Any]) -> Message:
            found = _insert(conn, msg, window)
            if found is None:
                notify(conn, INBOX + msg.to)
                return msg
            return dataclasses.replace(found, duplicate=True)

        return self.db.run(work)

    def read(
        self,
        name: str,
        *,
        include_read: bool,
        acked_by: tuple[str, int] | None,
        held_by: str,
        redeliver_after: Callable[[], float],
    ) -> Held:
        def work(conn: psycopg.Connection[Any]) -> Held:
            _lock_inbox(conn, name)
            if acked_by is not None and _retired(conn, name, held_by):
                raise IdempotencyConflict(
                    f"a later read already acknowledged the result of this read (holder {held_by})",
                    "pass the receipt of your latest read as ack",
                )
            stamp = time.time_ns()
            shown: list[Message] = []
            if include_read:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM messages WHERE recipient = %s AND state = 'read' ORDER BY id", (name,)
                ).fetchall()
                shown += [_message(r, read=True) for r in rows]
            held, others, acked = _pending(conn, name, acked_by, held_by, (stamp, redeliver_after))
            if include_read:
                shown += others
            if acked_by is not None:
                _retire(conn, name, acked_by[0])
            claimed = conn.execute(
                f"UPDATE messages SET state = 'pending', holder = %s, held_ns = %s"
                f" WHERE recipient = %s AND state = 'new' RETURNING {_COLUMNS}",
                (held_by, stamp, name),
            ).fetchall()
            handed = held + [_message(r, read=False) for r in claimed]
            handed.sort(key=lambda m: m.id)
            return Held(shown + handed, [], stamp, acked, len(claimed))

        return self.db.run(work)

    def acknowledge(self, name: str, holder: tuple[str, int]) -> int:
        def work(conn: psycopg.Connection[Any]) -> int:
            _lock_inbox(conn, name)
            _, _, acked = _pending(conn, name, holder, None, (0, lambda: 0.0))
            _retire(conn, name, holder[0])
            return acked

        return self.db.run(work)

    def acknowledge_run(self, name: str, since_ns: int) -> int:
        def work(conn: psycopg.Connection[Any]) -> int:
            _lock_inbox(conn, name)
            cur = conn.execute(
                "UPDATE messages SET state = 'read', holder = NULL, held_ns = NULL, read_ns = %s"
                " WHERE recipient = %s AND state = 'pending' AND held_ns >= %s",
                (time.time_ns(), name, since_ns),
            )
            return cur.rowcount

        return self.db.run(work)

    def unread_count(self, name: str) -> int:
        row = self.db.single(
            lambda c: c.execute(
                "SELECT count(*) FROM messages WHERE recipient = %s AND state = 'new'", (name,)
            ).fetchone()
        )
        return int(row[0]) if row else 0

    def unread_since(self, name: str, since_ns: int) -> bool:
        row = self.db.single(
            lambda c: c.execute(
                "SELECT 1 FROM messages WHERE recipient = %s AND state = 'new' AND sent_ns > %s LIMIT 1",
                (name, since_ns),
            ).fetchone()
        )
        return row is not None

    def listing(self, name: str) -> list[Delivery]:
        def work(conn: psycopg.Connection[Any]) -> list[Delivery]:
            if conn.execute("SELECT 1 FROM inboxes WHERE name = %s", (name,)).fetchone() is None:
                raise _no_inbox(name)
            query = (
                f"SELECT {_COLUMNS}, state, held_ns, read_ns, alerted_ns FROM messages WHERE recipient = %s ORDER BY id"
            )
            return [_delivery(row) for row in conn.execute(query, (name,)).fetchall()]

        return self.db.run(work)

    def sent_by(self, sender: str) -> list[Delivery]:
        query = f"SELECT {_COLUMNS}, state, held_ns, read_ns, alerted_ns FROM messages WHERE sender = %s ORDER BY id"
        return self.db.single(lambda conn: [_delivery(row) for row in conn.execute(query, (sender,)).fetchall()])

    def flag_unread(self, name: str, before_ns: int) -> list[Message]:
        def work(conn: psycopg.Connection[Any]) -> list[Message]:
            if conn.execute("SELECT 1 FROM inboxes WHERE name = %s", (name,)).fetchone() is None:
                raise _no_inbox(name)
            rows = conn.execute(
                f"UPDATE messages SET alerted_ns = %s WHERE recipient = %s AND state = 'new' AND sent_ns < %s"
                f" AND alerted_ns IS NULL RETURNING {_COLUMNS}",
                (time.time_ns(), name, before_ns),
            ).fetchall()
            return sorted((_message(row, read=False) for row in rows), key=lambda m: m.id)

        return self.db.run(work)

    def sweep(self, stale_after: float, orphan_age: float | None) -> int:
        """Nothing to finish: a message is a row, stored whole by its transaction or not at all."""
        return 0


def _insert(conn: psycopg.Connection[Any], msg: Message, window: float | None) -> Message | None:
    """Store `msg`; None, or the earlier message holding its dedup key (younger than `window`)."""
    values = (msg.to, msg.id, sent_ns(msg.id), msg.sender, msg.sent_at, msg.subject, msg.reply_to, msg.body)
    insert = (
        "INSERT INTO messages (recipient, id, sent_ns, sender, sent_at, subject, reply_to, body, dedup_key)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
    )
    try:
        if msg.dedup_key is None:
            # A retry after a commit whose answer was lost finds its own message: nothing to do.
            conn.execute(insert + " ON CONFLICT (recipient, id) DO NOTHING", (*values, None))
            return None
        for _ in range(3):  # the earlier message may be deleted between our insert and our look
            if conn.execute(insert + " ON CONFLICT DO NOTHING RETURNING 1", (*values, msg.dedup_key)).fetchone():
                return None
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE recipient = %s AND (dedup_key = %s OR id = %s)"
                " ORDER BY id = %s DESC LIMIT 1",
                (msg.to, msg.dedup_key, msg.id, msg.id),
            ).fetchone()
            if row is None:
                continue
            if row[0] == msg.id:
                return None  # stored by this very call, before a retry
            if window is not None and time.time_ns() - sent_ns(row[0]) >= window * 1e9:
                # The same text again, long after: a new message; the old one gives up the key.
                conn.execute("UPDATE messages SET dedup_key = NULL WHERE recipient = %s AND id = %s", (msg.to, row[0]))
                continue
            return _message(row, read=False)
        raise psycopg.errors.SerializationFailure("the dedup key kept changing hands")  # retried by Database.run
    except psycopg.errors.ForeignKeyViolation:
        raise _no_inbox(msg.to) from None


def _pending(
    conn: psycopg.Connection[Any],
    name: str,
    acked_by: tuple[str, int] | None,
    held_by: str | None,
    times: tuple[int, Callable[[], float]],
) -> tuple[list[Message], list[Message], int]:
    """Go through the inbox's pending messages, as the files backend's _pending, with `times` =
    (now in ns, the redelivery timeout in seconds, looked up only when needed).

    Marks read what `acked_by` (holder, stamp) covers; hands out under `held_by` again what it
    already holds, and anew what its reader never got (the acknowledged holder's messages handed
    out after its stamp) and what another holder kept past the timeout. Returns those
    (read=False), the others (read=True), and how many were marked read.
    """
    now, timeout = times
    rows = conn.execute(
        f"SELECT {_COLUMNS}, holder, held_ns FROM messages WHERE recipient = %s AND state = 'pending'", (name,)
    ).fetchall()
    expired: int | None = None
    acked: list[str] = []
    taken: list[str] = []
    held: list[Message] = []
    others: list[Message] = []
    for row in rows:
        msg_id, by, since = row[0], row[8], row[9]
        missed = acked_by is not None and by == acked_by[0]
        if acked_by is not None and missed and since <= acked_by[1]:
            acked.append(msg_id)
            continue
        mine = held_by is not None and by == held_by
        if not (mine or missed) and held_by is not None and expired is None:
            expired = now - int(timeout() * 1e9)
        take = held_by is not None and not mine and (missed or (expired is not None and since < expired))
        if mine or take:
            held.append(_message(row, read=False))
            if take:
                taken.append(msg_id)
        else:
            others.append(_message(row, read=True))
    if acked:
        conn.execute(
            "UPDATE messages SET state = 'read', holder = NULL, held_ns = NULL, read_ns = %s"
            " WHERE recipient = %s AND id = ANY(%s)",
            (time.time_ns(), name, acked),
        )
    if taken:
        conn.execute(
            "UPDATE messages SET holder = %s, held_ns = %s WHERE recipient = %s AND id = ANY(%s)",
            (held_by, now, name, taken),
        )
    others.sort(key=lambda m: m.id)
    return held, others, len(acked)


def _retired(conn: psycopg.Connection[Any], name: str, holder: str) -> bool:
    query = "SELECT 1 FROM retired_holders WHERE inbox = %s AND holder = %s"
    return conn.execute(query, (name, holder)).fetchone() is not None


def _retire(conn: psycopg.Connection[Any], name: str, holder: str) -> None:
    """Note that `holder`'s result was acknowledged: a late copy of the read that made it then
    claims nothing (read's IdempotencyConflict). Keeps about the last RETIRED_KEEP per inbox."""
    row = conn.execute(
        "INSERT INTO retired_holders (inbox, holder) VALUES (%s, %s) ON CONFLICT DO NOTHING RETURNING seq",
        (name, holder),
    ).fetchone()
    if row is not None and row[0] % _TRIM_EVERY == 0:
        conn.execute(
            "DELETE FROM retired_holders WHERE inbox = %s AND seq < ("
            " SELECT seq FROM retired_holders WHERE inbox = %s ORDER BY seq DESC OFFSET %s LIMIT 1)",
            (name, name, RETIRED_KEEP),
        )
