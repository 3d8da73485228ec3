"""The reaper: reconciles statuses with reality and cleans up, never throwing work away.

It runs on every wake-up of the control plane (a runner exiting, a mission queued) and in a
slow periodic sweep; on start-up it reconciles whatever happened while no control plane ran.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import (
    adopt,
    agents,
    archive,
    atomic,
    clock,
    events,
    git,
    launchers,
    mailbox,
    missions,
    progress,
    runner,
    workspaces,
)
from .errors import AgentNotFound, CorruptRecord, FractaError
from .repo import Repo

log = logging.getLogger("fracta.reaper")
STALE_AFTER = 3600.0  # seconds before a leftover temp file or staging folder is cleared
STARTING_GRACE = 60.0  # a record stuck in `starting` with no pid this long never got a runner


@dataclass
class SweepResult:
    finished: list[str] = field(default_factory=list)  # exit records applied
    lost: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # past their ttl but holding unsaved work
    cleared: int = 0  # stale temp files and staging folders


def sweep(repo: Repo, *, full: bool = True, only: frozenset[str] | None = None) -> SweepResult:
    """Reconcile every agent (or those in `only`: the ones this control plane supervises); with
    `full`, also expire old agents and clear leftovers."""
    result = SweepResult()
    everyone, _ = agents.list_all(repo)
    for agent in everyone:
        if only is not None and agent.name not in only:
            continue
        try:
            if agent.status in (agents.Status.STARTING, agents.Status.RUNNING):
                _reconcile(repo, agent, result)
            elif full and agent.status in agents.FINISHED:
                _expire(repo, agent, result)
        except (AgentNotFound, FileNotFoundError):
            continue  # removed while we looked
        except FractaError as exc:
            extra = {"event": "reaper.failed", "agent": agent.name, "error": exc.message}
            log.warning("the reaper could not handle an agent", extra=extra)
    if full:
        result.cleared = _clear_leftovers(repo)
        adopt.recover(repo)  # before the prune: a registered worktree whose folder is gone is adopted too
        if repo.git_common_dir is not None:
            git.run(repo.root, "worktree", "prune", check=False)
    if result.finished or result.lost or result.removed:
        progress.refresh(repo)
    return result


def _reconcile(repo: Repo, agent: agents.Agent, result: SweepResult) -> None:
    alive = launchers.create(repo).alive(repo, agent)
    if alive:
        return
    if alive is None:  # no turn of it known yet
        age = time.time() - clock.parse(agent.updated_at)
        if agent.status == agents.Status.RUNNING or age < STARTING_GRACE:
            return  # a joined agent (no process of its own), or a runner about to record its pid
    status = settle(repo, agent)
    if status == agents.Status.LOST:
        log.warning("agent runner vanished without an exit record", extra={"event": "agent.lost", "agent": agent.name})
        result.lost.append(agent.name)
    elif status is not None:
        result.finished.append(agent.name)


def settle(repo: Repo, agent: agents.Agent) -> agents.Status | None:
    """An agent whose runner is gone: stop whatever of it still runs, then record how it ended.

    Its exit record if the runner wrote one, else `lost`, which so always means that nothing of
    it runs. Returns the status recorded, or None if it had already moved on.
    """
    from .lifecycle import mark_lost

    exit_path = repo.agent_dir(agent.name) / runner.EXIT_FILE
    if exit_path.exists():
        grace = float(repo.config.integer("reaper.kill_grace"))
        launchers.create(repo).stop(repo, agent, grace)  # a child it left behind
        status = _apply_exit(repo, agent, exit_path)
    else:
        status = agents.Status.LOST if mark_lost(repo, agent) else None
    if status is not None:
        missions.wake(repo)  # its slot is free: the spawner looks again now, not at its next sweep
    return status


def _apply_exit(repo: Repo, agent: agents.Agent, exit_path: Path) -> agents.Status | None:
    from . import runtimes

    try:
        data = atomic.read_json(exit_path)
    except CorruptRecord:
        data = {"exit_code": None}
    code = data.get("exit_code")
    status = agents.Status(runtimes.get(agent.runtime).finished_status(code) if isinstance(code, int) else "failed")
    finished = data.get("finished_at") or clock.now()
    error = data.get("error") if isinstance(data.get("error"), str) else None

    def apply(current: agents.Agent) -> agents.Agent | None:
        if current.status not in (agents.Status.STARTING, agents.Status.RUNNING) or current.pid != agent.pid:
            return None  # settled meanwhile (by its runner, or by another reader)
        return dataclasses.replace(current, status=status, exit_code=code, finished_at=finished, error=error, pid=None)

    if agents.modify(repo, agent.name, apply).status != status:
        return None
    events.record(repo, "agent.exited", agent=agent.name, exit_code=code, status=status.value, reconciled=True)
    return status


def _expire(repo: Repo, agent: agents.Agent, result: SweepResult) -> None:
    ttl = repo.config.integer("reaper.ttl")
    finished = clock.parse(agent.finished_at or agent.updated_at)
    if time.time() - finished < ttl:
        return
    ws = workspaces.from_agent(agent)
    ours = ws is not None and (ws.kind == workspaces.GIT or workspaces.directory.managed(repo, ws))
    if ws is not None and ours:
        unsaved = archive.unsaved_work(repo, agent)
        if unsaved.any:
            if agent.name not in result.kept:
                result.kept.append(agent.name)
            log.info("keeping expired agent with unsaved work", extra={"event": "reaper.kept", "agent": agent.name})
            return
    # A process it left behind would write into a folder that is gone, or into a new agent's.
    grace = float(repo.config.integer("reaper.kill_grace"))
    launchers.create(repo).stop(repo, dataclasses.replace(agent, pid=None, pid_start=None), grace)
    if ws is not None and ours:
        workspaces.remove(repo, ws)
    agents.remove(repo, agent.name)
    events.record(repo, "agent.reaped", agent=agent.name)
    log.info("removed expired agent", extra={"event": "reaper.removed", "agent": agent.name})
    result.removed.append(agent.name)


def _clear_leftovers(repo: Repo) -> int:
    cleared = len(atomic.remove_stale_temp_files(repo.state, STALE_AFTER))
    # Messages a dead sender or a crash left in an inbox's tmp/: delivered if whole, else deleted.
    cleared += mailbox.sweep(repo, STALE_AFTER)
    # Staging folders of creators that died (.new-*) and half-removed folders (.gone-*).
    # Lock files are never "stale": they are flock()ed and the OS releases a dead holder's lock.
    cleared += atomic.remove_stale_dirs(repo.agents_dir, (".new-", ".gone-"), STALE_AFTER)
    return cleared
