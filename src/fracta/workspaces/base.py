"""What every workspace kind shares: the record of where an agent works."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..records import Agent

GIT = "git"
DIRECTORY = "directory"
BRANCH_PREFIX = "feature/"


@dataclass(frozen=True)
class Workspace:
    """Where an agent works; `base` is the resolved commit a git workspace started from."""

    kind: str  # GIT or DIRECTORY
    path: Path
    branch: str | None
    base: str | None

    def record_fields(self) -> dict[str, Any]:
        """The Agent record fields that describe this workspace (for agents.new(**fields))."""
        return {"workspace": str(self.path), "workspace_kind": self.kind, "branch": self.branch, "base": self.base}


def branch_for(name: str) -> str:
    return f"{BRANCH_PREFIX}{name}"


def from_agent(agent: Agent) -> Workspace | None:
    """The workspace fracta made for `agent`, or None (e.g. a joined agent running where it likes)."""
    if not agent.workspace or agent.workspace_kind not in (GIT, DIRECTORY):
        return None
    branch = agent.branch
    if agent.workspace_kind == GIT and branch is None:
        branch = branch_for(agent.name)
    return Workspace(kind=agent.workspace_kind, path=Path(agent.workspace), branch=branch, base=agent.base)
