"""Tool discovery: one catalogue of every tool a caller can use (fracta's and proxied), searchable by words."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .. import results

FRACTA = "fracta"
SEPARATOR = "__"  # proxied tools are named <server>__<tool>


@dataclass(frozen=True)
class Entry:
    name: str
    description: str
    source: str  # "fracta", or the backend MCP server's name
    input_schema: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "description": self.description,
            "input_schema": self.input_schema,
        }


def catalog(mine: Iterable[tuple[str, str, dict[str, Any]]], backends: Sequence[Any]) -> list[Entry]:
    """fracta's tools (name, description, schema) first, then the backends' (mcp.types.Tool), each sorted."""
    own = [Entry(name, text, FRACTA, schema) for name, text, schema in mine]
    proxied = [
        Entry(t.name, t.description or "", t.name.split(SEPARATOR, 1)[0], dict(t.input_schema or {})) for t in backends
    ]
    return own + sorted(proxied, key=lambda e: e.name)


def search(entries: list[Entry], query: str) -> list[Entry]:
    """Entries whose name, source or description holds every word of `query`; name hits rank first."""
    words = query.lower().split()
    if not words:
        return entries
    hits = [e for e in entries if all(w in f"{e.name} {e.source} {e.description}".lower() for w in words)]
    return sorted(hits, key=lambda e: -sum(w in e.name.lower() for w in words))  # stable: keeps catalogue order


def found(query: str, entries: list[Entry]) -> dict[str, Any]:
    return {
        "version": results.VERSION,
        "query": query,
        "count": len(entries),
        "tools": [e.to_dict() for e in entries],
    }
