"""The launcher protocol: how one turn of an agent is started, followed and stopped.

An agent's *turn* is one headless run of its runtime: the first run after a spawn, or a wake
that resumes its session. The spawner builds the turn's launch (argv, env, cwd, written to the
agent's launch file, see spawner.start) and hands it to the launcher configured by
`launcher.kind`; everything else about agents (records, mailboxes, workspaces, merge) is the
same whatever launches them.

- `local`: a detached runner process on this machine (launchers/local.py);
- `container`: the same runner, inside the control plane's container, with the agent in a
  managed directory workspace (launchers/container.py);
- `kubernetes`: a Kubernetes Job per turn (launchers/kubernetes.py, extra `fracta[k8s]`).

Whoever runs the turn records its end in the store, as the local runner does (status, exit
code, `agent.exited` event): a launcher never waits for its turns. A launcher is built cheaply
(the CLI builds one to kill an agent): clients, watches and warm processes start in `begin`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..records import Agent
from ..repo import Repo

LOCAL = "local"
CONTAINER = "container"
KUBERNETES = "kubernetes"
KINDS = (LOCAL, CONTAINER, KUBERNETES)


@dataclass(frozen=True)
class Started:
    """What a launcher reports about a turn it started; the spawner puts `pid`/`pid_start` on the
    agent's record (None for a launcher without a local process, e.g. a Kubernetes Job, which
    finds its turn again by the agent's name and launch id)."""

    pid: int | None
    pid_start: int | None = None  # the process's start time, so a reused pid is never taken for it


class Launcher(Protocol):
    """Starts, follows and stops agents' turns. Implementations: local, container, kubernetes."""

    kind: str  # one of KINDS: what `launcher.kind` names

    def start(self, repo: Repo, name: str, launch_id: str) -> Started:
        """Start the turn of agent `name` whose launch (the agent's launch file, written by the
        spawner) carries `launch_id`: its first run or a wake. Returns at once; raises
        FractaError if nothing could be started (the spawner then marks the agent failed, or
        keeps it idle for a wake). The turn itself re-checks the kill mark before its program
        starts (runner.KILL_MARK): a kill between the spawner's check and the turn wins."""
        ...

    def stop(self, repo: Repo, agent: Agent, grace: float) -> bool:
        """Stop everything of `agent` that runs, of any of its turns: ask it to end, wait up to
        `grace` seconds, then force it. Returns True if anything ran. Returns only once nothing
        of it runs any more (a Job deleted with foreground propagation, its pods gone), so the
        caller may then save and remove its workspace. Raises FractaError if it cannot."""
        ...

    def alive(self, repo: Repo, agent: Agent) -> bool | None:
        """Whether the turn of `agent` (starting or running) still runs: False once it is gone
        without its end recorded (the reaper then settles it, see reaper.settle); None when no
        turn of it is known yet (a `starting` agent is then given reaper.STARTING_GRACE before
        it is settled `lost`; a `running` one with none is a joined agent's, left alone)."""
        ...

    def output(self, repo: Repo, name: str) -> Path:
        """The file `peek` reads agent `name`'s output from: records as the runner writes them to
        runner.OUTPUT_FILE (one JSON object a line: ts, stream, line). A launcher whose turns run
        elsewhere makes them write it there (an output file on a shared volume) or mirrors its
        output stream (pod logs) into it."""
        ...

    def begin(self) -> None:
        """Start background work in a control plane: a warm runner, an API client, a watch."""
        ...

    def close(self) -> None:
        """Stop what `begin` started; agents' turns keep running."""
        ...
