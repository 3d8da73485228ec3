"""What every face lists: records checked against their processes, and why a queued agent waits.

A record says `running` until its runner records the exit; a runner killed with SIGKILL records
nothing. So listing checks each starting or running agent's runner by pid and start time (one
psutil look-up), and settles one that is gone at once, as the reaper would: a dead agent is
never shown running and never holds a slot. Only then is anything heavier imported.
"""

from __future__ import annotations

import contextlib

from . import agents, atomic, processes
from .errors import CorruptRecord, FractaError
from .repo import Repo

ACTIVE = frozenset({agents.Status.STARTING, agents.Status.RUNNING})


def holds_slot(agent: agents.Agent) -> bool:
    """A spawned agent starting or running takes one of max_agents; a joined one, run by hand, never."""
    return agent.kind != "joined" and agent.status in ACTIVE


def runner_gone(agent: agents.Agent) -> bool:
    """True if the agent should have a runner (a pid is on record) and that process is gone."""
    return holds_slot(agent) and agent.pid is not None and not processes.alive(agent.pid, agent.pid_start)


def checked(repo: Repo) -> tuple[list[agents.Agent], list[CorruptRecord]]:
    """Every agent, as agents.list_all, with those whose runner is gone settled first."""
    found, problems = agents.list_all(repo)
    gone = [a for a in found if runner_gone(a)]
    if not gone:
        return found, problems
    _settle(repo, gone)
    return agents.list_all(repo)


def load(repo: Repo, name: str) -> agents.Agent:
    """One agent, as agents.load, settled first if its runner is gone."""
    agent = agents.load(repo, name)
    if not runner_gone(agent):
        return agent
    _settle(repo, [agent])
    return agents.load(repo, name)


def _settle(repo: Repo, gone: list[agents.Agent]) -> None:
    from . import progress, reaper

    for agent in gone:
        # Already settled by another reader, or not stoppable or not writable from here (a
        # sandboxed agent's `fracta list`): the control plane's reaper settles it then.
        with contextlib.suppress(FractaError, OSError):
            reaper.settle(repo, agent)
    with contextlib.suppress(FractaError, OSError):
        progress.refresh(repo)


def waiting(repo: Repo, everyone: list[agents.Agent]) -> dict[str, str]:
    """For each queued agent: its place in the queue and what it waits for."""
    queued = {a.name for a in everyone if a.status == agents.Status.QUEUED}
    if not queued:
        return {}
    from . import missions  # only with a queue: `fracta list` does without it otherwise

    queue, _ = missions.pending(repo)
    order = list(dict.fromkeys(m.name for m in queue if m.name in queued))
    limit = repo.config.integer("agents.max_agents", minimum=1)
    busy = sum(1 for a in everyone if holds_slot(a))
    if busy >= limit:
        reason = f"waiting for a slot: {busy}/{limit} running"
    elif not _control_plane_up(repo):
        reason = "waiting for the control plane to start it (fracta up)"
    else:
        reason = f"about to start: {busy}/{limit} running"
    found = {name: f"{_ordinal(i + 1)} in queue, {reason}" for i, name in enumerate(order)}
    for name in queued - found.keys():
        found[name] = "no mission queued for it: it will not start (fracta kill it, then spawn it again)"
    return found


def _control_plane_up(repo: Repo) -> bool:
    try:
        data = atomic.read_json(repo.control_path)
    except (FileNotFoundError, CorruptRecord):
        return False
    pid, started = data.get("pid"), data.get("pid_start")
    return isinstance(pid, int) and processes.alive(pid, started if isinstance(started, int) else None)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
