"""PostgresStore: the Store protocol over one PostgreSQL database, shared by every control plane
that opens it (Compose and Kubernetes modes)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from ...errors import AgentNotFound, ConfigError
from ...repo import Repo
from ..base import RESYNC, AgentStore, EventStore, MailStore, MissionStore, Store, TokenStore
from . import migrations
from .agents import PostgresAgents
from .connect import CONNECT_TIMEOUT, open_pool
from .db import CHANNEL, Database
from .events import PostgresEvents
from .listen import Listener, Notice, listen
from .mail import PostgresMail
from .missions import PostgresMissions
from .schema import MIGRATIONS
from .tokens import PostgresTokens

_UNTIL = "clock_timestamp() + make_interval(secs => %s)"  # a lease's end, on the database's clock


class PostgresStore:
    backend = "postgres"

    def __init__(self, repo: Repo, db: Database) -> None:
        self.repo = repo
        self.db = db
        # Typed as the protocol's parts: Store's attributes are invariant.
        self.agents: AgentStore = PostgresAgents(db, repo)
        self.mail: MailStore = PostgresMail(db)
        self.missions: MissionStore = PostgresMissions(db)
        self.events: EventStore = PostgresEvents(db)
        self._tokens = PostgresTokens(db, repo)
        self.tokens: TokenStore = self._tokens
        self._listeners: list[Listener] = []

    def record_action(self, action: str, at: str) -> None:
        value = Jsonb({"action": action, "at": at})
        self.db.single(
            lambda c: c.execute(
                "INSERT INTO meta (key, value) VALUES ('last_action', %s)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (value,),
            )
        )

    def last_action(self) -> tuple[str, str] | None:
        row = self.db.single(lambda c: c.execute("SELECT value FROM meta WHERE key = 'last_action'").fetchone())
        if row is None or not isinstance(row[0], dict):
            return None
        return str(row[0].get("action", "")), str(row[0].get("at", ""))

    def subscribe(self, listener: Callable[[str], None]) -> Callable[[], None] | None:
        """LISTEN in a thread of its own (listen.py); after a lost connection, RESYNC."""

        def heard(notice: Notice) -> None:
            listener(RESYNC if notice.reconnected else notice.payload)

        watcher = listen(self.db.url, [CHANNEL], heard, timeout=max(self.db.retry, 1.0))
        self._listeners.append(watcher)

        def stop() -> None:
            watcher.stop()
            if watcher in self._listeners:
                self._listeners.remove(watcher)

        return stop

    def supervise(self, owner: str, lease: float) -> frozenset[str] | None:
        """One UPDATE: the row locks make two control planes taking over at once agree (the
        second re-checks each row after the first commits and finds it taken). agent_state, not
        agents: an agent held by anyone is still supervised."""
        rows = self.db.single(
            lambda c: c.execute(
                f"UPDATE agent_state SET supervisor = %s, supervised_until = {_UNTIL}"
                " WHERE supervisor = %s OR supervisor IS NULL OR supervised_until < clock_timestamp()"
                " RETURNING name",
                (owner, lease, owner),
            ).fetchall()
        )
        return frozenset(r[0] for r in rows)

    def adopt(self, owner: str, name: str, lease: float) -> None:
        found = self.db.single(
            lambda c: c.execute(
                f"UPDATE agent_state SET supervisor = %s, supervised_until = {_UNTIL} WHERE name = %s RETURNING 1",
                (owner, lease, name),
            ).fetchone()
        )
        if found is None:
            raise AgentNotFound(f"no agent named {name!r}", "run fracta list to see the agents")

    def close(self) -> None:
        for watcher in list(self._listeners):
            watcher.stop()
        self._listeners.clear()
        self.db.close()


def open_store(repo: Repo, url: str, *, pool_size: int, lease: float, retry: float) -> PostgresStore:
    """Connect, bring the schema up to date (SchemaTooNew if the database is ahead of this
    fracta), and let this machine's chessmaster token in. `lease` is passed per call (claim,
    supervise), not kept here."""
    del lease
    pool = open_pool(url, size=max(1, pool_size), retry_seconds=retry)
    holds = ConnectionPool(
        url,
        min_size=1,
        max_size=max(8, 2 * pool_size),  # a scheduler holding its lock and an agent, per thread: grown on demand
        kwargs={"connect_timeout": CONNECT_TIMEOUT, "application_name": "fracta"},
        check=ConnectionPool.check_connection,
        open=False,
        name="fracta-holds",
    )
    db = Database(url, pool, holds, retry)
    try:
        holds.open(wait=True, timeout=max(retry, CONNECT_TIMEOUT * 2))
        db.run(lambda conn: migrations.apply(conn, MIGRATIONS))
        store = PostgresStore(repo, db)
        store._tokens.register_chessmaster()
    except BaseException:
        db.close()
        raise
    return store


def open_from_config(repo: Repo) -> PostgresStore:
    """The store fracta.yaml's `state:` section describes (url with its ${VAR}s filled in)."""
    config = repo.config
    url = config.resolved("state.url")
    if not isinstance(url, str) or not url:
        raise ConfigError(
            f"state.backend is postgres, but state.url in {config.path.name} is empty",
            "set state.url, e.g. url: ${FRACTA_DATABASE_URL}",
        )
    return open_store(
        repo,
        url,
        pool_size=config.integer("state.pool_size", minimum=1),
        lease=float(config.resolved("state.lease_seconds")),
        retry=float(config.resolved("state.retry_seconds")),
    )


if TYPE_CHECKING:

    def _conforms(store: PostgresStore) -> Store:  # mypy checks PostgresStore against the protocol
        return store
