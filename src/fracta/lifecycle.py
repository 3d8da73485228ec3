"""Spawning and killing agents: the lifecycle core that the CLI, HTTP API and MCP tools share."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import (
    adopt,
    agents,
    archive,
    clock,
    credentials,
    events,
    journal,
    launchers,
    missions,
    names,
    processes,
    progress,
    runner,
    runtimes,
    workspaces,
)
from .errors import AgentExists, AgentNotFound, FractaError, Refused
from .repo import Repo
from .runtimes.base import LaunchContext


@dataclass(frozen=True)
class SpawnRequest:
    name: str
    runtime: str
    prompt: str | None = None
    args: tuple[str, ...] = ()
    base: str | None = None
    workspace: Path | None = None  # a directory workspace instead of a git worktree


def spawn(repo: Repo, req: SpawnRequest) -> agents.Agent:
    """Validate, create the workspace, record the agent as queued and queue its mission.

    A transaction: a failure leaves nothing behind (no worktree, branch, record or mission), and
    a process killed midway leaves a journal naming what it created, which the control plane
    adopts as an agent (journal.py, adopt.py).
    """
    repo.require_initialized()
    names.validate(req.name, kind="task name")
    if agents.exists(repo, req.name):
        raise _exists(req.name)
    refuse_if_still_running(repo, req.name)
    prompt = req.prompt.strip() if req.prompt else None
    _check(repo, req, prompt)
    with journal.holding(repo, req.name):
        if agents.exists(repo, req.name):  # spawned meanwhile, while we waited for the lock
            raise _exists(req.name)
        if why := adopt.adopt_now(repo, req.name):  # a dead spawn's leftover: make it an agent now
            raise AgentExists(
                f"task name {req.name!r} is taken by what an earlier spawn or fracta left: {why}",
                f"fracta list shows it as agent {req.name!r}; merge it, or fracta kill {req.name} and spawn again",
            )
        record = _create(repo, req, prompt)
    events.record(repo, "agent.spawned", agent=req.name, runtime=req.runtime, workspace=record.workspace_kind)
    progress.record_action(repo, f"spawned {req.name} ({req.runtime})")
    return record


def _exists(name: str) -> AgentExists:
    return AgentExists(
        f"an agent named {name!r} already exists",
        f"choose another task name, or remove it first with: fracta kill {name}",
    )


def _check(repo: Repo, req: SpawnRequest, prompt: str | None) -> None:
    """Everything that can be refused before anything is created."""
    runtime = runtimes.get(req.runtime)
    if not prompt and req.runtime != "command":
        raise FractaError(f"the {req.runtime} runtime needs a prompt", "pass --prompt TEXT or --prompt-file FILE")
    probe = LaunchContext(
        name=req.name,
        prompt=prompt,
        workspace=req.workspace or repo.root,
        agent_dir=repo.agent_dir(req.name),
        home=repo.state,
        token="",
        control_url=None,
        gateway_url=None,
        args=list(req.args),
        options=dict(repo.config.get("agents.agent_runtimes").get(req.runtime, {}) or {}),
    )
    runtime.check(probe)
    credentials.check(repo, req.runtime)  # a broken profile fails here, before anything exists


def _create(repo: Repo, req: SpawnRequest, prompt: str | None) -> agents.Agent:
    """Workspace, record, mission, journaled; the caller holds the name's spawn lock."""

    claimed: list[workspaces.Workspace] = []

    def claim(ws: workspaces.Workspace) -> None:  # the pieces are free: say what we will create
        entry = journal.entry(req.name, req.runtime, ws.kind, ws.path, ws.branch, ws.base, list(req.args))
        journal.write(repo, entry)
        claimed.append(ws)
        journal.checkpoint("journaled")

    ws: workspaces.Workspace | None = None
    done: list[str] = []  # the steps taken, for the roll-back
    try:
        if req.workspace is not None:
            ws = workspaces.create_directory(repo, req.name, req.workspace)
            claim(ws)
        elif workspaces.directory.enabled(repo):
            ws = workspaces.directory.create(repo, req.name)
            claim(ws)
        else:
            ws = workspaces.create_git(repo, req.name, req.base, claim)
        journal.checkpoint("workspace")
        record = agents.new(req.name, runtime=req.runtime, status=agents.Status.QUEUED, command=list(req.args))
        record = dataclasses.replace(record, **ws.record_fields())
        agents.create(repo, record)
        done.append("record")
        journal.checkpoint("record")
        missions.enqueue(repo, req.name, req.runtime, prompt, list(req.args))
        done.append("mission")
        journal.checkpoint("mission")
    except BaseException:
        # A git failure after the claim was rolled back by create_git; removing the claimed
        # pieces again (they were free before) makes sure before the journal goes.
        if _roll_back(repo, req.name, ws or (claimed[0] if claimed else None), done):
            journal.remove(repo, req.name)
        raise  # a failed roll-back keeps the journal: the control plane adopts what is left
    journal.remove(repo, req.name)  # whole: the journal has done its job
    return record


def _roll_back(repo: Repo, name: str, ws: workspaces.Workspace | None, done: list[str]) -> bool:
    """Undo a spawn that failed midway, newest step first; False when something stays."""
    steps: list[Callable[[], None]] = []
    if "mission" in done:
        steps.append(lambda: missions.drop_agent(repo, name))
    if "record" in done:
        steps.append(lambda: agents.remove(repo, name))
    if ws is not None:
        steps.append(lambda: workspaces.remove(repo, ws))
    undone = True
    for step in steps:
        try:
            step()
        except (FractaError, OSError):
            undone = False
    return undone


@dataclass(frozen=True)
class KillResult:
    name: str
    stopped: bool  # a process was running and was stopped
    saved: archive.SavedWork | None


def kill(repo: Repo, name: str, *, force: bool = False, grace: float | None = None) -> KillResult:
    """Stop the agent's process tree, remove its worktree and branch (or its managed folder), forget it.

    Refuses while the branch has unmerged commits or the worktree uncommitted changes (a managed
    folder: commits not pushed, files not committed, or any file if it is no git repository),
    unless `force`; even then the work is first saved under refs/fracta/archive/<name>/<time> (a
    managed folder is moved to <workspaces.root>/.archive/<name>/<time>).
    """
    agent = _load_or_adopt(repo, name)
    ws = workspaces.from_agent(agent)
    if processes.is_marked(os.environ, str(repo.state), name):
        raise Refused(
            f"agent {name!r} cannot kill itself: this process is one of its own",
            "finish the run instead (the agent is then done), or ask the chessmaster to kill it",
        )
    if not force:
        _refuse_if_unsaved(repo, agent)
    # Mark it under its lock, as the spawner and the runner check the mark under it before they
    # start anything: either they saw no mark and the runner's group is on record by now, or they
    # never start the program.
    mark = repo.agent_dir(name) / runner.KILL_MARK
    with agents.holding(repo, name) as agent:
        mark.touch()
    missions.drop_agent(repo, name)
    try:
        # Stop every process of it first, so the work cannot change while we look at it and save it.
        wait = float(repo.config.integer("reaper.kill_grace")) if grace is None else grace
        stopped = agent.kind != "joined" and launchers.create(repo).stop(repo, agent, wait)
        saved = None
        if ws is not None and (ws.kind == workspaces.GIT or workspaces.directory.managed(repo, ws)):
            if not force:
                _refuse_if_unsaved(repo, agent)  # it may have committed while stopping
            elif archive.unsaved_work(repo, agent).any:
                saved = archive.save(repo, agent)
            workspaces.remove(repo, ws)
    except FractaError:
        mark.unlink(missing_ok=True)  # it stays: a later wake or start must not see a kill under way
        raise
    agents.remove(repo, name)
    events.record(repo, "agent.killed", agent=name, forced=force, archived=saved.ref if saved else None)
    progress.record_action(repo, f"killed {name}" + (f" (work saved under {saved.ref})" if saved else ""))
    missions.wake(repo)
    return KillResult(name=name, stopped=stopped, saved=saved)


def _load_or_adopt(repo: Repo, name: str) -> agents.Agent:
    """The agent `name`, or what a dead spawn or an older fracta left under that name, adopted now.

    The control plane adopts leftovers at start and on its sweeps; a kill before any of that
    (no control plane has run since) still finds them, with the usual safety.
    """
    try:
        return agents.load(repo, name)
    except AgentNotFound:
        held = journal.try_holding(repo, name)
        if held is None:
            raise  # a spawn of that name is in flight: it ends with a whole agent or nothing
        with held:
            adopt.adopt_now(repo, name)
        return agents.load(repo, name)


def _refuse_if_unsaved(repo: Repo, agent: agents.Agent) -> None:
    unsaved = archive.unsaved_work(repo, agent)
    if unsaved.any and unsaved.folder:
        aside = f"{workspaces.directory.root(repo) / workspaces.directory.ARCHIVE_DIR / agent.name}/"
        force = f"fracta kill {agent.name} --force to move the folder to {aside} and remove the agent"
        save = "commit and push it from its folder" if unsaved.repository else "copy what you need out of it"
        raise Refused(
            f"agent {agent.name!r} has work that exists nowhere else: {unsaved.describe()}",
            f"{save} ({agent.workspace}), or run {force}",
        )
    if unsaved.any:
        force = (
            f"fracta kill {agent.name} --force to save it under refs/fracta/archive/{agent.name}/ and remove the agent"
        )
        if unsaved.dirty_files:  # a merge carries commits only: those files must be committed first
            where = f"commit them in its worktree ({agent.workspace})"
            hint = f"{where} and merge it (fracta merge {agent.name}), or run {force}"
        else:
            hint = f"merge it first (fracta merge {agent.name}), or run {force}"
        raise Refused(f"agent {agent.name!r} has work that exists nowhere else: {unsaved.describe()}", hint)


def mark_lost(repo: Repo, agent: agents.Agent) -> bool:
    """Record that the agent's runner vanished without an exit record, once nothing of it runs.

    Whatever of it still runs is stopped first: `lost` never means "running unsupervised".
    Returns False if it had moved on meanwhile (its runner, or another reader, settled it).
    """
    grace = float(repo.config.integer("reaper.kill_grace"))
    stopped = launchers.create(repo).stop(repo, agent, grace)
    why = f"its runner (pid {agent.pid}) vanished without an exit record" if agent.pid else "its runner never started"
    why += "; fracta stopped what of it still ran" if stopped else ""

    def lose(current: agents.Agent) -> agents.Agent | None:
        if current.status not in (agents.Status.STARTING, agents.Status.RUNNING) or current.pid != agent.pid:
            return None
        return dataclasses.replace(current, status=agents.Status.LOST, finished_at=clock.now(), pid=None, error=why)

    if agents.modify(repo, agent.name, lose).status != agents.Status.LOST:
        return False
    events.record(repo, "agent.lost", agent=agent.name)
    return True


def refuse_if_still_running(repo: Repo, name: str) -> None:
    """A name is never reused while a process of an earlier agent of that name runs."""
    left = processes.named(str(repo.state), name)
    if left:
        pids = " ".join(map(str, left))
        raise AgentExists(
            f"processes of an earlier agent named {name!r} still run (pids {pids})",
            f"wait for them to end or stop them (kill -TERM {pids}), or choose another task name",
        )
