"""The knowledge graph's core: what the gateway's graph_* tools, `fracta graph` and a strategy
runner call. Results are versioned plain dicts (fracta/contracts/graph.py describes them).

Provenance: every node and relationship written through `upsert` carries `_by` (who wrote it
last) and `_at` (when), and keeps `_created_by` / `_created_at` from its first writer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import clock
from ..errors import GraphQueryError, GraphUnavailable, InvalidInput, Refused
from ..repo import Repo
from . import settings as graph_settings
from .client import Graph

VERSION = 1
PROVENANCE = ("_by", "_at", "_created_by", "_created_at")
KEY = "key"
MAX_TEXT = 256 * 1024  # a query's rows are cut past this much JSON: an agent pays for every character
SCHEMA_SAMPLE = 1000
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True)
class NodeRef:
    label: str
    key: str


@dataclass(frozen=True)
class Node:
    label: str
    key: str
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Relationship:
    type: str
    source: NodeRef
    to: NodeRef
    properties: dict[str, Any] = field(default_factory=dict)


# --- opening ---------------------------------------------------------------------------------------


def open_graph(repo: Repo) -> Graph:
    """The graph fracta.yaml names: the configured service, or the embedded server the control
    plane runs (GraphUnavailable if none runs: `fracta up` starts it)."""
    settings = graph_settings.of(repo)
    if not graph_settings.client_installed():
        raise GraphUnavailable("the knowledge graph needs the falkordb package", graph_settings.INSTALL_HINT)
    if not settings.embedded:
        return Graph(settings)
    return Graph(settings, embedded_socket(repo), reconnect=lambda: embedded_socket(repo))


def embedded_socket(repo: Repo) -> Path:
    """The socket of the embedded server the control plane runs; GraphUnavailable if none answers."""
    from . import server

    found = server.running(repo)
    if found is None or not server.answers(found.socket):
        raise GraphUnavailable("the knowledge graph is not running", "fracta up starts it with the control plane")
    return found.socket


# --- reading ---------------------------------------------------------------------------------------


def query(graph: Graph, cypher: str, params: dict[str, Any] | None = None, limit: int = 100) -> dict[str, Any]:
    """Run read-only Cypher (the server refuses a write); at most `limit` rows and MAX_TEXT of JSON come back."""
    answer = graph.read(cypher, params)
    named = [dict(zip(answer.columns, row, strict=True)) for row in answer.rows[:limit]]
    # One encoding of all the rows, and row by row only when they may not fit (the cut is then the
    # same: the whole list's JSON is longer than its rows' together). ops.query's own CPU on a fixed
    # 100-row answer (2 columns), median of 7 x 2000 calls: 0.19 ms (a dumps a row) -> 0.07 ms.
    rows = named
    if len(json.dumps(named, ensure_ascii=False)) > MAX_TEXT:
        rows, size = [], 0
        for row in named:
            size += len(json.dumps(row, ensure_ascii=False))
            if size > MAX_TEXT and rows:
                break
            rows.append(row)
    count = len(answer.rows)
    note = None
    if len(rows) < count:
        why = f"limit {limit}" if len(rows) == limit else f"{MAX_TEXT // 1024} KiB of JSON"
        note = (
            f"cut to the first {len(rows)} of {count} rows ({why}): add ORDER BY/SKIP/LIMIT, return fewer "
            "properties, or narrow the MATCH"
        )
    return {
        "version": VERSION,
        "graph": graph.name,
        "columns": answer.columns,
        "rows": rows,
        "count": count,
        "truncated": note is not None,
        "note": note,
    }


def schema(graph: Graph) -> dict[str, Any]:
    """Labels and relationship types with their counts and the property names seen on them."""
    labels = sorted(str(r[0]) for r in graph.read("CALL db.labels()").rows)
    types = sorted(str(r[0]) for r in graph.read("CALL db.relationshipTypes()").rows)
    found_labels = []
    for label in labels:
        count = graph.read(f"MATCH (n:`{label}`) RETURN count(n)").rows[0][0]
        keys = graph.read(
            f"MATCH (n:`{label}`) WITH n LIMIT {SCHEMA_SAMPLE} UNWIND keys(n) AS k RETURN DISTINCT k ORDER BY k"
        )
        found_labels.append({"label": label, "count": int(count), "properties": [str(r[0]) for r in keys.rows]})
    found_types = []
    for kind in types:
        count = graph.read(f"MATCH ()-[r:`{kind}`]->() RETURN count(r)").rows[0][0]
        keys = graph.read(
            f"MATCH ()-[r:`{kind}`]->() WITH r LIMIT {SCHEMA_SAMPLE} UNWIND keys(r) AS k RETURN DISTINCT k ORDER BY k"
        )
        found_types.append({"type": kind, "count": int(count), "properties": [str(r[0]) for r in keys.rows]})
    return {"version": VERSION, "graph": graph.name, "labels": found_labels, "relationships": found_types}


# --- writing ---------------------------------------------------------------------------------------


def upsert(
    graph: Graph, nodes: Sequence[Node] = (), relationships: Sequence[Relationship] = (), *, by: str
) -> dict[str, Any]:
    """MERGE nodes by (label, key) and relationships by (type, from, to), stamped with `by` and now.

    Idempotent: the same call again changes only `_at`. One query, so all of it is written or
    none (FalkorDB runs each query atomically); endpoints missing are made (stamped too).
    """
    _check(nodes, relationships)
    at = clock.now()
    params: dict[str, Any] = {"by": by, "at": at}
    parts: list[str] = []
    for i, (label, group) in enumerate(_grouped(nodes, lambda n: n.label)):
        params[f"n{i}"] = [{"key": n.key, "props": n.properties} for n in group]
        parts.append(
            f"UNWIND $n{i} AS row MERGE (n:`{label}` {{{KEY}: row.key}}) {_created('n')} "
            f"SET n += row.props, {_stamp('n')} WITH count(*) AS n{i}_done"
        )
    for i, ((kind, a, b), rels) in enumerate(_grouped(relationships, lambda r: (r.type, r.source.label, r.to.label))):
        params[f"r{i}"] = [{"from": r.source.key, "to": r.to.key, "props": r.properties} for r in rels]
        parts.append(
            f"UNWIND $r{i} AS row "
            f"MERGE (a:`{a}` {{{KEY}: row.from}}) {_created('a')}, {_stamp('a')} "
            f"MERGE (b:`{b}` {{{KEY}: row.to}}) {_created('b')}, {_stamp('b')} "
            f"MERGE (a)-[r:`{kind}`]->(b) {_created('r')} "
            f"SET r += row.props, {_stamp('r')} WITH count(*) AS r{i}_done"
        )
    stats: dict[str, float] = {}
    if parts:
        _index(graph, {n.label for n in nodes} | {e.label for r in relationships for e in (r.source, r.to)})
        stats = graph.write(" ".join(parts) + " RETURN 0", params).stats
    return {
        "version": VERSION,
        "graph": graph.name,
        "by": by,
        "at": at,
        "nodes": len(nodes),
        "relationships": len(relationships),
        "created_nodes": int(stats.get("nodes_created", 0)),
        "created_relationships": int(stats.get("relationships_created", 0)),
        "properties_set": int(stats.get("properties_set", 0)),
    }


def drop(graph: Graph, *, confirm: bool) -> dict[str, Any]:
    """Delete the whole graph; refused without `confirm`."""
    if not confirm:
        raise Refused(
            f"dropping the graph {graph.name!r} deletes every node and relationship in it; nothing was changed",
            "pass confirm: true (fracta graph drop --confirm) to drop it",
        )
    return {"version": VERSION, "graph": graph.name, "dropped": graph.delete()}


def _created(var: str) -> str:
    return f"ON CREATE SET {var}._created_by = $by, {var}._created_at = $at"


def _stamp(var: str) -> str:
    return f"{var}._by = $by, {var}._at = $at"


def _grouped(items: Iterable[Any], key: Any) -> list[tuple[Any, list[Any]]]:
    groups: dict[Any, list[Any]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return list(groups.items())


def _check(nodes: Sequence[Node], relationships: Sequence[Relationship]) -> None:
    """Names go into the Cypher text: plain words only. Provenance and `key` are fracta's to set."""
    for where, name, props in [
        *((f"node {n.label}:{n.key}", n.label, n.properties) for n in nodes),
        *((f"relationship {r.type}", r.type, r.properties) for r in relationships),
        *((f"node {e.label}:{e.key}", e.label, {}) for r in relationships for e in (r.source, r.to)),
    ]:
        if not _NAME.match(name):
            raise InvalidInput(f"{where}: {name!r} is not a label or type name", "use letters, digits and _")
        taken = sorted(k for k in props if k.startswith("_") or k == KEY)
        if taken:
            raise InvalidInput(
                f"{where}: the properties {', '.join(taken)} are fracta's own",
                "the key goes in `key`; _by, _at, _created_by and _created_at are stamped by fracta",
            )


def _index(graph: Graph, labels: set[str]) -> None:
    """A range index on `key` for each label, once per connection: MERGE finds its node by index."""
    for label in sorted(labels - graph.indexed):
        try:
            graph.write(f"CREATE INDEX FOR (n:`{label}`) ON (n.{KEY})")
        except GraphQueryError as exc:
            if "already indexed" not in exc.message:
                raise
        graph.indexed.add(label)
