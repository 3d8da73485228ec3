"""The mission queue in PostgreSQL: claimed with SELECT ... FOR UPDATE SKIP LOCKED under a lease
on the database's clock; a claim whose lease ran out is pending again."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ...errors import CorruptRecord
from ...records import Mission
from ..base import MISSIONS
from .db import Database, notify

# pg_advisory_lock key of MissionStore.scheduling (any constant no other lock uses: "fracta-sc").
SCHEDULING_LOCK = 0x66726163_74612D73
_COLUMNS = "id, name, runtime, prompt, args, queued_ns"
_PENDING = "(claimed_by IS NULL OR lease_until < clock_timestamp())"


def _mission(row: tuple[Any, ...]) -> Mission:
    mission_id, name, runtime, prompt, args, queued_ns = row
    if not isinstance(args, list):
        raise CorruptRecord(_path(mission_id), "args is not a list")
    return Mission(name, runtime, prompt, [str(a) for a in args], int(queued_ns), str(mission_id))


def _path(mission_id: object) -> Any:
    from pathlib import Path

    return Path(f"postgres:missions/{mission_id}")


def _id(mission: Mission) -> int | None:
    return int(mission.id) if mission.id.isdigit() else None


class PostgresMissions:
    def __init__(self, db: Database) -> None:
        self.db = db

    def enqueue(self, mission: Mission) -> Mission:
        def work(conn: psycopg.Connection[Any]) -> Mission:
            row = conn.execute(
                "INSERT INTO missions (name, runtime, prompt, args, queued_ns)"
                " VALUES (%s, %s, %s, %s, %s) RETURNING id",
                (mission.name, mission.runtime, mission.prompt, Jsonb(list(mission.args)), mission.queued_ns),
            ).fetchone()
            assert row is not None
            notify(conn, MISSIONS)
            return dataclasses.replace(mission, args=list(mission.args), id=str(row[0]))

        return self.db.run(work)

    def pending(self) -> tuple[list[Mission], list[CorruptRecord]]:
        rows = self.db.single(
            lambda c: c.execute(f"SELECT {_COLUMNS} FROM missions WHERE {_PENDING} ORDER BY queued_ns, id").fetchall()
        )
        found: list[Mission] = []
        problems: list[CorruptRecord] = []
        for row in rows:
            try:
                found.append(_mission(row))
            except CorruptRecord as exc:
                problems.append(exc)
        return found, problems

    def claim(self, owner: str, lease: float, limit: int) -> list[Mission]:
        if limit <= 0:
            return []

        claim = os.urandom(8).hex()

        def work(conn: psycopg.Connection[Any]) -> list[Mission]:
            # Run again after a lost connection, this call may have committed already: it finds
            # its own claims then, rather than leaving them held (and renewed) by nobody's call.
            rows = conn.execute(f"SELECT {_COLUMNS} FROM missions WHERE claim = %s", (claim,)).fetchall()
            if not rows:
                # SKIP LOCKED: concurrent claimers pass over rows another is taking; the row lock
                # re-checks the condition, so a mission is never claimed twice.
                rows = conn.execute(
                    f"WITH free AS (SELECT id FROM missions WHERE {_PENDING} ORDER BY queued_ns, id LIMIT %s"
                    " FOR UPDATE SKIP LOCKED)"
                    " UPDATE missions m SET claimed_by = %s, claim = %s,"
                    " lease_until = clock_timestamp() + make_interval(secs => %s)"
                    f" FROM free WHERE m.id = free.id RETURNING m.{_COLUMNS.replace(', ', ', m.')}",
                    (limit, owner, claim, lease),
                ).fetchall()
            return [_mission(r) for r in sorted(rows, key=lambda r: (r[5], r[0]))]

        return self.db.run(work)

    def renew(self, owner: str, lease: float) -> int:
        def work(conn: psycopg.Connection[Any]) -> int:
            return conn.execute(
                "UPDATE missions SET lease_until = clock_timestamp() + make_interval(secs => %s) WHERE claimed_by = %s",
                (lease, owner),
            ).rowcount

        return self.db.single(work)

    def release(self, mission: Mission) -> None:
        mission_id = _id(mission)
        if mission_id is None:
            return

        def work(conn: psycopg.Connection[Any]) -> None:
            free = "UPDATE missions SET claimed_by = NULL, lease_until = NULL, claim = NULL WHERE id = %s"
            conn.execute(free, (mission_id,))
            notify(conn, MISSIONS)

        self.db.run(work)

    def remove(self, mission: Mission) -> None:
        mission_id = _id(mission)
        if mission_id is not None:
            self.db.single(lambda c: c.execute("DELETE FROM missions WHERE id = %s", (mission_id,)))

    def drop_agent(self, name: str) -> None:
        self.db.single(lambda c: c.execute("DELETE FROM missions WHERE name = %s", (name,)))

    @contextlib.contextmanager
    def scheduling(self) -> Iterator[None]:
        """A session-level advisory lock on a connection of its own, for the with-block: one
        scheduler at a time across every process on this database."""
        with self.db.connection() as conn:
            try:
                conn.execute("SELECT pg_advisory_lock(%s)", (SCHEDULING_LOCK,))
                conn.commit()  # a session lock outlives the transaction, which must not stay open
            except psycopg.OperationalError as exc:
                raise self.db.unavailable(exc) from None
            try:
                yield
            finally:
                with contextlib.suppress(psycopg.OperationalError):  # a lost session lost its lock too
                    conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEDULING_LOCK,))
                    conn.commit()

    def wake(self) -> None:
        self.db.single(lambda c: notify(c, MISSIONS))
