"""Agents in PostgreSQL: a row per agent, held with a row lock (SELECT ... FOR NO KEY UPDATE).

While this thread holds an agent, what it asks about that agent runs on the hold's connection:
it sees the hold's own writes, and never waits for its own lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg.types.json import Jsonb

from ... import atomic, clock, names
from ...errors import AgentExists, AgentNotFound, CorruptRecord
from ...records import Agent
from ...repo import Repo
from .db import Database

T = TypeVar("T")
ACTIVITY_RESOLUTION = 0.2  # seconds: as the files backend, touch writes at most this often per agent


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def record_path(name: str) -> Path:
    """What a CorruptRecord names for an agent's row (there is no file)."""
    return Path(f"postgres:agents/{name}")


def _agent(name: str, record: Any) -> Agent:
    if not isinstance(record, dict):
        raise CorruptRecord(record_path(name), "the record is not a JSON object")
    return Agent.from_dict(record, record_path(name))


def _not_found(name: str) -> AgentNotFound:
    return AgentNotFound(f"no agent named {name!r}", "run fracta list to see the agents")


class PostgresAgents:
    def __init__(self, db: Database, repo: Repo) -> None:
        self.db = db
        self.repo = repo
        self._local = threading.local()  # .holds: {name: the connection holding its row lock}
        self._touched: dict[str, float] = {}

    def _holds(self) -> dict[str, psycopg.Connection[Any]]:
        holds: dict[str, psycopg.Connection[Any]] | None = getattr(self._local, "holds", None)
        if holds is None:
            holds = self._local.holds = {}
        return holds

    def _on(self, name: str, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """`work` on the connection holding `name` if this thread holds it, else in a transaction."""
        held = self._holds().get(name)
        if held is None:
            return self.db.single(work)  # exists and load: one SELECT each
        try:
            return work(held)
        except psycopg.OperationalError as exc:
            raise self.db.unavailable(exc) from None

    def exists(self, name: str) -> bool:
        found = self._on(name, lambda c: c.execute("SELECT 1 FROM agents WHERE name = %s", (name,)).fetchone())
        return found is not None

    def load(self, name: str) -> Agent:
        row = self._on(name, lambda c: c.execute("SELECT record FROM agents WHERE name = %s", (name,)).fetchone())
        if row is None:
            raise _not_found(name)
        return _agent(name, row[0])

    def list_all(self) -> tuple[list[Agent], list[CorruptRecord]]:
        rows = self.db.single(
            lambda c: c.execute("SELECT name, record FROM agents ORDER BY created_at, name").fetchall()
        )
        found: list[Agent] = []
        problems: list[CorruptRecord] = []
        for name, record in rows:
            try:
                found.append(_agent(name, record))
            except CorruptRecord as exc:
                problems.append(exc)
        found.sort(key=lambda a: (a.created_at, a.name))  # as the files backend: by the record's own time
        return found, problems

    def names(self) -> list[str]:
        return [r[0] for r in self.db.single(lambda c: c.execute("SELECT name FROM agents ORDER BY name").fetchall())]

    def create(self, agent: Agent, token: str) -> None:
        """The row, its inbox and the token's hash in one transaction; the launcher's copy of the
        token (agents/<name>/token, read by the runner) is written before it commits."""
        names.validate(agent.name)  # the name becomes a folder below
        folder = self.repo.agent_dir(agent.name)
        digest = token_hash(token)

        def insert(conn: psycopg.Connection[Any]) -> bool:
            row = conn.execute(
                "INSERT INTO agents (name, record, created_at, token_hash)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (name) DO NOTHING RETURNING 1",
                (agent.name, Jsonb(agent.to_dict()), agent.created_at, digest),
            ).fetchone()
            if row is None:
                # Taken, unless by this very call: a retry after a commit whose answer was lost.
                mine = conn.execute("SELECT token_hash = %s FROM agents WHERE name = %s", (digest, agent.name))
                found = mine.fetchone()
                return found is not None and bool(found[0])
            conn.execute("INSERT INTO agent_state (name, last_activity) VALUES (%s, %s)", (agent.name, time.time()))
            conn.execute("INSERT INTO inboxes (name, agent) VALUES (%s, %s)", (agent.name, agent.name))
            atomic.ensure_dirs(folder)
            atomic.write_text(folder / "token", token + "\n", mode=0o600)
            return True

        if not self.db.run(insert):
            raise AgentExists(
                f"an agent named {agent.name!r} already exists",
                f"choose another name, or remove it first with: fracta kill {agent.name}",
            )

    @contextlib.contextmanager
    def holding(self, name: str) -> Iterator[Agent]:
        """The row lock lasts as long as the transaction, which ends with the with-block: it
        commits even when the block raises, as the files backend keeps what `write` wrote."""
        holds = self._holds()
        with self.db.connection() as conn:
            try:
                row = conn.execute("SELECT record FROM agents WHERE name = %s FOR NO KEY UPDATE", (name,)).fetchone()
            except psycopg.OperationalError as exc:
                raise self.db.unavailable(exc) from None
            try:
                if row is None:
                    raise _not_found(name)
                holds[name] = conn
                try:
                    yield _agent(name, row[0])
                finally:
                    del holds[name]
            finally:
                _end(self.db, conn)

    def write(self, agent: Agent) -> Agent:
        conn = self._holds().get(agent.name)
        if conn is None:
            raise RuntimeError(f"AgentStore.write({agent.name!r}) outside holding({agent.name!r})")
        changed = dataclasses.replace(agent, updated_at=clock.now())
        conn.execute("UPDATE agents SET record = %s WHERE name = %s", (Jsonb(changed.to_dict()), agent.name))
        return changed

    def remove(self, name: str) -> None:
        """The row goes, and with it (ON DELETE CASCADE) its inbox, messages and token."""
        gone = self._on(name, lambda c: c.execute("DELETE FROM agents WHERE name = %s RETURNING 1", (name,)).fetchone())
        if gone is None:
            raise _not_found(name)
        self._touched.pop(name, None)
        names.validate(name)  # it existed, so it is valid: never a path outside agents/
        folder = self.repo.agent_dir(name)
        if folder.exists():
            atomic.remove_dir(folder)

    def touch(self, name: str) -> None:
        if name == names.CHESSMASTER:
            return
        now = time.monotonic()
        if now - self._touched.get(name, -ACTIVITY_RESOLUTION) < ACTIVITY_RESOLUTION:
            return
        update = "UPDATE agent_state SET last_activity = %s WHERE name = %s"
        self.db.single(lambda c: c.execute(update, (time.time(), name)))  # agent_state: never waits for a hold
        self._touched[name] = now

    def last_activity(self, name: str) -> float | None:
        query = "SELECT last_activity FROM agent_state WHERE name = %s"
        row = self.db.single(lambda c: c.execute(query, (name,)).fetchone())
        return None if row is None or row[0] is None else float(row[0])


def _end(db: Database, conn: psycopg.Connection[Any]) -> None:
    """Commit the hold's transaction (roll back one a failed statement broke)."""
    failed = conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
    try:
        if failed:
            conn.rollback()
        else:
            conn.commit()
    except psycopg.OperationalError as exc:
        raise db.unavailable(exc) from None
