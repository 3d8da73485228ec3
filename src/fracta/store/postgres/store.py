"""PostgresStore: the Store protocol over one PostgreSQL database, shared by every control plane
that opens it (Compose and Kubernetes modes)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from ...errors import AgentNotFound, FractaError, SchemaTooNew
from ...repo import Repo
from ..base import RESYNC, AgentStore, EventStore, MailStore, MissionStore, Store, TokenStore
from .agents import PostgresAgents
from .db import CHANNEL, Database
from .events import PostgresEvents
from .mail import PostgresMail
from .missions import PostgresMissions
from .schema import MIGRATIONS, VERSION
from .tokens import PostgresTokens

MIGRATION_LOCK = 0x66726163_74612D6D  # pg_advisory_xact_lock key: one migrating process at a time


class PostgresStore:
    backend = "postgres"

    def __init__(self, repo: Repo, db: Database, url: str) -> None:
        self.repo = repo
        self.db = db
        self._url = url
        # Typed as the protocol's parts: Store's attributes are invariant.
        self.agents: AgentStore = PostgresAgents(db, repo)
        self.mail: MailStore = PostgresMail(db)
        self.missions: MissionStore = PostgresMissions(db)
        self.events: EventStore = PostgresEvents(db)
        self._tokens = PostgresTokens(db, repo)
        self.tokens: TokenStore = self._tokens
        self._listeners: list[_Listener] = []

    def record_action(self, action: str, at: str) -> None:
        value = Jsonb({"action": action, "at": at})
        self.db.run(
            lambda c: c.execute(
                "INSERT INTO meta (key, value) VALUES ('last_action', %s)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (value,),
            )
        )

    def last_action(self) -> tuple[str, str] | None:
        row = self.db.run(lambda c: c.execute("SELECT value FROM meta WHERE key = 'last_action'").fetchone())
        if row is None or not isinstance(row[0], dict):
            return None
        return str(row[0].get("action", "")), str(row[0].get("at", ""))

    def subscribe(self, listener: Callable[[str], None]) -> Callable[[], None] | None:
        watcher = _Listener(self._url, listener, self.db.retry)
        self._listeners.append(watcher)
        watcher.start()

        def stop() -> None:
            watcher.stop()
            if watcher in self._listeners:
                self._listeners.remove(watcher)

        return stop

    def supervise(self, owner: str, lease: float) -> frozenset[str] | None:
        """One UPDATE: the row locks make two control planes taking over at once agree (the
        second re-checks each row after the first commits and finds it taken)."""
        rows = self.db.run(
            lambda c: c.execute(
                "UPDATE agents SET supervisor = %s, supervised_until = clock_timestamp() + make_interval(secs => %s)"
                " WHERE supervisor = %s OR supervisor IS NULL OR supervised_until < clock_timestamp()"
                " RETURNING name",
                (owner, lease, owner),
            ).fetchall()
        )
        return frozenset(r[0] for r in rows)

    def adopt(self, owner: str, name: str, lease: float) -> None:
        found = self.db.run(
            lambda c: c.execute(
                "UPDATE agents SET supervisor = %s, supervised_until = clock_timestamp() + make_interval(secs => %s)"
                " WHERE name = %s RETURNING 1",
                (owner, lease, name),
            ).fetchone()
        )
        if found is None:
            raise AgentNotFound(f"no agent named {name!r}", "run fracta list to see the agents")

    def close(self) -> None:
        for watcher in list(self._listeners):
            watcher.stop()
        self._listeners.clear()
        self.db.pool.close()


class _Listener:
    """LISTEN on its own connection in a thread; reconnects after a loss, then says RESYNC."""

    def __init__(self, url: str, listener: Callable[[str], None], retry: float) -> None:
        self.url = url
        self.listener = listener
        self.retry = retry
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fracta-pg-listen", daemon=True)
        self._ready = threading.Event()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(timeout=max(self.retry, 5.0))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        lost = False
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._ready.set()
                    if lost:
                        self.listener(RESYNC)
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.25):
                            self.listener(note.payload)
            except psycopg.OperationalError:
                lost = True
                self._stop.wait(0.5)


def open_store(repo: Repo, url: str, *, pool_size: int, lease: float, retry: float) -> PostgresStore:
    """Connect, bring the schema up to date (refusing a newer one), and register this machine's
    chessmaster token."""
    del lease  # leases are passed per call (claim, supervise); kept for the config's shape
    pool = ConnectionPool(
        url,
        min_size=1,
        max_size=max(1, pool_size),
        kwargs={"autocommit": True},
        check=ConnectionPool.check_connection,
        open=False,
        timeout=max(retry, 1.0),
    )
    where = _redacted(url)
    db = Database(pool, retry, where)
    try:
        pool.open(wait=True, timeout=max(retry, 1.0))
        db.run(_migrate)
        store = PostgresStore(repo, db, url)
        store._tokens.register_chessmaster()
    except FractaError:
        pool.close()
        raise
    except Exception as exc:
        pool.close()
        raise db.unavailable(exc) from None
    return store


def _migrate(conn: psycopg.Connection) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
    conn.execute("CREATE TABLE IF NOT EXISTS fracta_schema (version integer NOT NULL)")
    row = conn.execute("SELECT max(version) FROM fracta_schema").fetchone()
    current = int(row[0]) if row and row[0] is not None else 0
    if current > VERSION:
        raise SchemaTooNew(conn.info.dbname, current, VERSION)
    for version, sql in MIGRATIONS:
        if version > current:
            conn.execute(sql)  # fixed text from schema.py
            conn.execute("INSERT INTO fracta_schema (version) VALUES (%s)", (version,))


def _redacted(url: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        parts: dict[str, Any] = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "(an unreadable URL)"
    if "password" in parts:
        parts["password"] = "***"
    return make_conninfo(**parts)


if TYPE_CHECKING:

    def _conforms(store: PostgresStore) -> Store:  # mypy checks PostgresStore against the protocol
        return store
