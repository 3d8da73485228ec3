"""The container launcher (Compose): each turn runs as a process inside the control plane's
container, under the same runner as the local launcher, in a managed directory workspace.

What differs from local:
- The agent's folder is `<workspaces.root>/<task>` on the container's workspace volume
  (workspaces.kind directory, which the configuration requires with this launcher): what lies
  outside that volume is gone when the container is recreated, so a turn whose workspace is
  elsewhere (a `--workspace` folder) is refused before anything starts.
- Runners live and die with the container. The state folder and the store outlive it: on the
  next start the reaper finds their records with no runner and settles them (`lost`, or their
  exit record), as it does for a local runner killed with SIGKILL.
Everything else (warm spare, process groups, run markers, output.jsonl for peek) is local's.
"""

from __future__ import annotations

from pathlib import Path

from .. import agents
from .. import repo as repo_mod
from ..errors import Refused
from ..workspaces import directory
from .base import CONTAINER, Started
from .local import LocalLauncher


class ContainerLauncher(LocalLauncher):
    """The local launcher's runners, for agents in managed directory workspaces."""

    kind = CONTAINER

    def start(self, repo: repo_mod.Repo, name: str, launch_id: str) -> Started:
        agent = agents.load(repo, name)
        root = directory.root(repo)
        if not agent.workspace or Path(agent.workspace).resolve().parent != root:
            raise Refused(
                f"agent {name!r} works in {agent.workspace or 'no workspace'}, outside {root}: "
                "the container launcher runs agents only in folders on the workspace volume",
                f"spawn it without --workspace (it then gets {root / name})",
            )
        return super().start(repo, name, launch_id)
