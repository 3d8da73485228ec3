"""Talking to FalkorDB: read-only queries (GRAPH.RO_QUERY, refused by the server if they write),
writes, and the database's errors said as it said them."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import GraphQueryError, GraphUnavailable
from .settings import GraphSettings

EMPTY_KEY = "Invalid graph operation on empty key"  # FalkorDB's answer to a read of a graph not yet made
READ_ONLY_REFUSAL = "is to be executed only on read-only queries"
STATS = ("nodes_created", "relationships_created", "properties_set", "run_time_ms")


@dataclass(frozen=True)
class Answer:
    """A query's answer: column names, rows (JSON values) and the server's statistics."""

    columns: list[str]
    rows: list[list[Any]]
    stats: dict[str, float] = field(default_factory=dict)


class Graph:
    """One graph on one FalkorDB server. Thread-safe (a pool of connections); `reconnect`, when
    given (the embedded server), is called once after a lost connection and returns the socket to
    use: a server that died is started again."""

    def __init__(
        self, settings: GraphSettings, socket: Path | None = None, reconnect: Callable[[], Path] | None = None
    ) -> None:
        self.settings = settings
        self.socket = socket
        self.reconnect = reconnect
        self.indexed: set[str] = set()  # labels whose `key` index exists (ops.upsert makes them)
        self._db: Any = None
        self._graph: Any = None

    @property
    def name(self) -> str:
        return self.settings.name

    def where(self) -> str:
        """Where the server is, for messages (never with its password)."""
        if self.socket is not None:
            return f"the embedded FalkorDB at {self.socket}"
        from urllib.parse import urlsplit

        url = urlsplit(self.settings.url or "")
        return f"FalkorDB at {url.hostname or url.path}" + (f":{url.port}" if url.port else "")

    def _connect(self) -> Any:
        if self._db is None:
            import falkordb

            if self.socket is None and self.settings.embedded and self.reconnect is not None:
                self.socket = self.reconnect()

            if self.socket is not None:
                self._db = falkordb.FalkorDB(unix_socket_path=str(self.socket), password=self.settings.password)
            elif (self.settings.url or "").startswith(("redis://", "rediss://", "unix://")):
                self._db = falkordb.FalkorDB.from_url(self.settings.url, password=self.settings.password)
            else:  # a plain path: a unix socket
                self._db = falkordb.FalkorDB(unix_socket_path=self.settings.url, password=self.settings.password)
        return self._db

    def _selected(self, db: Any) -> Any:
        """The client's graph object, kept: it caches the labels and property names that results
        refer to by number (a new one would fetch them again for every query)."""
        if self._graph is None:
            self._graph = db.select_graph(self.name)
        return self._graph

    def close(self) -> None:
        if self._db is not None:
            self._db.connection.close()
            self._db = None
            self._graph = None

    def read(self, cypher: str, params: dict[str, Any] | None = None) -> Answer:
        """A read-only query: the server refuses one that would write."""
        try:
            return self._run(cypher, params, read_only=True)
        except GraphQueryError as exc:
            if exc.message != EMPTY_KEY:
                raise
        self.write("RETURN 0")  # the graph does not exist yet: make it (empty), then read it
        return self._run(cypher, params, read_only=True)

    def write(self, cypher: str, params: dict[str, Any] | None = None) -> Answer:
        return self._run(cypher, params, read_only=False)

    def delete(self) -> bool:
        """Drop the whole graph; False if there was none."""
        try:
            self._call(lambda db: self._selected(db).delete())
        except GraphQueryError as exc:
            if exc.message == EMPTY_KEY:
                return False
            raise
        return True

    def _run(self, cypher: str, params: dict[str, Any] | None, read_only: bool) -> Answer:
        timeout = max(1, math.ceil(self.settings.timeout * 1000))

        def query(db: Any) -> Any:
            graph = self._selected(db)
            run = graph.ro_query if read_only else graph.query
            return run(cypher, params or None, timeout=timeout)

        result = self._call(query)
        columns = [str(h[1]) for h in (result.header or [])]
        rows = [[jsonable(v) for v in row] for row in (result.result_set or [])]
        return Answer(columns, rows, {name: float(getattr(result, name)) for name in STATS})

    def _call(self, step: Callable[[Any], Any]) -> Any:
        import redis.exceptions as rx

        for attempt in (1, 2):
            try:
                return step(self._connect())
            except rx.ResponseError as exc:
                raise GraphQueryError(_said(exc), _hint(exc)) from None
            except (rx.ConnectionError, rx.TimeoutError, OSError) as exc:
                self.close()
                if attempt == 1 and self.reconnect is not None:
                    self.socket = self.reconnect()
                    continue
                raise GraphUnavailable(
                    f"cannot reach {self.where()}: {exc}",
                    "fracta up starts the embedded graph" if self.reconnect or self.socket else "is the service up?",
                ) from None
            except (ValueError, TypeError) as exc:  # parameters the client cannot send (a name with a backtick)
                raise GraphQueryError(f"bad parameters: {exc}", "parameter names are plain words") from None
        raise AssertionError("unreachable")


def _said(exc: Exception) -> str:
    return str(exc.args[0]) if exc.args else str(exc)


def _hint(exc: Exception) -> str:
    said = _said(exc)
    if READ_ONLY_REFUSAL in said:
        return "graph_query only reads; write with graph_upsert"
    if "Query timed out" in said:
        return "narrow the query (a label, a LIMIT), or raise graph.timeout in fracta.yaml"
    return "fix the Cypher; graph_schema shows the labels, relationship types and properties"


def jsonable(value: Any) -> Any:
    """A FalkorDB value as JSON: nodes, relationships and paths as objects; anything else exotic as text."""
    from falkordb import Edge, Node
    from falkordb import Path as GraphPath

    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, Node):
        return {"id": value.id, "labels": list(value.labels or []), "properties": jsonable(value.properties)}
    if isinstance(value, Edge):
        return {
            "id": value.id,
            "type": value.relation,
            "from": _end_id(value.src_node),
            "to": _end_id(value.dest_node),
            "properties": jsonable(value.properties),
        }
    if isinstance(value, GraphPath):
        return {"nodes": [jsonable(n) for n in value.nodes()], "relationships": [jsonable(e) for e in value.edges()]}
    return str(value)


def _end_id(end: Any) -> Any:
    return getattr(end, "id", end)
