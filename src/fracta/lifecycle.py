"""Spawning and killing agents: the lifecycle core that the CLI, HTTP API and MCP tools share."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from . import (
    agents,
    archive,
    clock,
    credentials,
    events,
    missions,
    names,
    processes,
    progress,
    runner,
    runtimes,
    workspaces,
)
from .errors import AgentExists, FractaError, Refused
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

    Any failure leaves nothing behind: no worktree, branch, record or mission.
    """
    repo.require_initialized()
    names.validate(req.name, kind="task name")
    if agents.exists(repo, req.name):
        raise AgentExists(
            f"an agent named {req.name!r} already exists",
            f"choose another task name, or remove it first with: fracta kill {req.name}",
        )
    runtime = runtimes.get(req.runtime)
    prompt = req.prompt.strip() if req.prompt else None
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
    if req.workspace is not None:
        ws = workspaces.create_directory(repo, req.name, req.workspace)
    else:
        ws = workspaces.create_git(repo, req.name, req.base)
    record = agents.new(
        req.name,
        runtime=req.runtime,
        status=agents.Status.QUEUED,
        workspace=str(ws.path),
        workspace_kind=ws.kind,
        branch=ws.branch,
        base=ws.base,
        command=list(req.args),
    )
    try:
        agents.create(repo, record)
        missions.enqueue(repo, req.name, req.runtime, prompt, list(req.args))
    except BaseException:
        with contextlib.suppress(FractaError, OSError):
            agents.remove(repo, req.name)
        workspaces.remove(repo, ws)
        raise
    events.record(repo, "agent.spawned", agent=req.name, runtime=req.runtime, workspace=ws.kind)
    progress.record_action(repo, f"spawned {req.name} ({req.runtime})")
    return record


@dataclass(frozen=True)
class KillResult:
    name: str
    stopped: bool  # a process was running and was stopped
    saved: archive.SavedWork | None


def kill(repo: Repo, name: str, *, force: bool = False, grace: float | None = None) -> KillResult:
    """Stop the agent's process tree, remove its worktree and branch, forget it.

    Refuses while the branch has unmerged commits or the worktree uncommitted changes, unless
    `force`; even then the work is first saved under refs/fracta/archive/<name>/<time>.
    """
    agent = agents.load(repo, name)
    ws = workspaces.from_agent(agent)
    if not force:
        _refuse_if_unsaved(repo, agent)
    # Stop the process first so the work cannot change while we look at it and save it.
    (repo.agent_dir(name) / runner.KILL_MARK).touch()
    wait = float(repo.config.integer("reaper.kill_grace")) if grace is None else grace
    stopped = processes.terminate_group(agent.pid, agent.pid_start, wait) if agent.pid else False
    missions.drop_agent(repo, name)
    saved = None
    if ws is not None and ws.kind == "git":
        if not force:
            _refuse_if_unsaved(repo, agent)  # it may have committed while stopping
        elif archive.unsaved_work(repo, agent).any:
            saved = archive.save(repo, agent)
        workspaces.remove(repo, ws)
    agents.remove(repo, name)
    events.record(repo, "agent.killed", agent=name, forced=force, archived=saved.ref if saved else None)
    progress.record_action(repo, f"killed {name}" + (f" (work saved under {saved.ref})" if saved else ""))
    missions.wake(repo)
    return KillResult(name=name, stopped=stopped, saved=saved)


def _refuse_if_unsaved(repo: Repo, agent: agents.Agent) -> None:
    unsaved = archive.unsaved_work(repo, agent)
    if unsaved.any:
        raise Refused(
            f"agent {agent.name!r} has work that exists nowhere else: {unsaved.describe()}",
            f"merge it first (fracta merge {agent.name}), or use fracta kill {agent.name} --force "
            "to save it under refs/fracta/archive/ and remove the agent",
        )


def mark_lost(repo: Repo, agent: agents.Agent) -> None:
    agents.update(repo, agent.name, status=agents.Status.LOST, finished_at=clock.now(), pid=None)
    events.record(repo, "agent.lost", agent=agent.name)
