"""Adopting leftovers: what an interrupted spawn, a crash or an older fracta left without an agent.

The control plane runs `recover` when it starts and on every full sweep of the reaper. It
looks for:

- spawn journals whose spawn is no longer in flight (journal.py): the spawn died midway;
- git worktrees registered under .fracta/worktrees/ (their folder there or not) with no agent
  record: an interrupted spawn, or a fracta from before the journal;
- agent records whose git worktree is gone.

Each is made (or kept) a visible agent, never deleted: a leftover becomes an agent with status
`lost`, its `error` saying what was found and its `intent` a short form of it, so `fracta list`
shows it and `fracta merge` or `fracta kill` deal with it with their usual safety (kill refuses
while it holds unmerged commits or uncommitted changes; --force saves them under
refs/fracta/archive/ first).

Which `feature/*` branches are fracta's: one named by a spawn journal (written after the spawn
found the branch free, before it made it), or one checked out in a worktree under
.fracta/worktrees/. Any other `feature/*` branch may be the user's own, and is left alone, as
is a folder under .fracta/worktrees/ that no journal names and git does not know as a worktree
(fracta does not delete files it did not make; a spawn of that name says the path is taken).
The spare checkouts (.fracta/worktrees/.spare-*, spares.py) are fracta's own and not agents.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from . import agents, clock, events, git, journal, missions, names, progress, workspaces
from .errors import AgentExists, AgentNotFound, CorruptRecord, FractaError, InvalidName
from .repo import Repo

log = logging.getLogger("fracta.adopt")
ADOPTED_INTENT = "adopted by fracta: {what}; merge it or fracta kill it"


@dataclass
class Recovery:
    adopted: dict[str, str] = field(default_factory=dict)  # name -> why (what was found)
    completed: list[str] = field(default_factory=list)  # journals of spawns that had finished whole
    abandoned: list[str] = field(default_factory=list)  # journals of spawns that had created nothing
    annotated: dict[str, str] = field(default_factory=dict)  # records whose worktree is gone -> why
    busy: list[str] = field(default_factory=list)  # a spawn of that name is in flight: next time


def recover(repo: Repo) -> Recovery:
    """Adopt every leftover found (see the module doc); deletes nothing but finished journals."""
    result = Recovery()
    if not repo.initialized:
        return result
    try:
        registered = _registered_here(repo)
    except FractaError as exc:  # git could not list the worktrees: the next sweep looks again
        log.warning("could not look for leftover worktrees", extra={"event": "adopt.scan_failed", "error": exc.message})
        return result
    for name in _candidates(repo, registered):
        try:
            names.validate(name)
        except InvalidName:
            log.warning(
                "a leftover worktree has a name fracta cannot use", extra={"event": "adopt.bad_name", "folder": name}
            )
            continue
        held = journal.try_holding(repo, name)
        if held is None:
            result.busy.append(name)
            continue
        with held:
            try:
                _recover_one(repo, name, registered.get(name), result)
            except (FractaError, OSError) as exc:  # one bad leftover must not stop the others
                extra = {"event": "adopt.failed", "agent": name, "error": str(exc)}
                log.warning("could not adopt a leftover", extra=extra)
    if result.adopted or result.annotated:
        progress.refresh(repo)
    return result


def adopt_now(repo: Repo, name: str) -> str | None:
    """Adopt what a dead spawn or an older fracta left under `name`, if anything; returns why.

    For a spawn that finds its name taken by a leftover: the caller holds the name's spawn lock.
    Cheap when nothing is there (two stat calls).
    """
    journaled = journal.path_of(repo, name).exists()
    if not journaled and not workspaces.worktree_path(repo, name).exists():
        return None
    result = Recovery()
    _recover_one(repo, name, _registered_here(repo).get(name), result)
    if result.adopted:
        progress.refresh(repo)
    return result.adopted.get(name)


def _registered_here(repo: Repo) -> dict[str, workspaces.Registered]:
    """Worktrees git has registered directly under .fracta/worktrees/, by folder name (no spares)."""
    if repo.git_common_dir is None:
        return {}
    home = repo.worktrees_dir.resolve()
    return {
        w.path.name: w for w in workspaces.worktrees(repo) if w.path.parent == home and not w.path.name.startswith(".")
    }


def _candidates(repo: Repo, registered: dict[str, workspaces.Registered]) -> list[str]:
    """Names that may need adopting, found cheaply; each is looked at again under its lock."""
    found = set(journal.names(repo))
    found |= {n for n in registered if not os.path.exists(repo.agent_dir(n))}
    everyone, _ = agents.list_all(repo)
    found |= {a.name for a in everyone if _worktree_gone(a) and _gone_reason(repo, a) not in (a.error or "")}
    return sorted(found)


def _worktree_gone(agent: agents.Agent) -> bool:
    return agent.workspace_kind == workspaces.GIT and bool(agent.workspace) and not Path(agent.workspace or "").exists()


def _recover_one(repo: Repo, name: str, registered: workspaces.Registered | None, result: Recovery) -> None:
    try:
        entry = journal.read(repo, name)
    except CorruptRecord as exc:  # a torn journal names nothing reliably: treat it as absent
        log.warning(
            "unreadable spawn journal", extra={"event": "adopt.journal_unreadable", "agent": name, "error": exc.message}
        )
        entry = None
        journal.remove(repo, name)
    try:
        record: agents.Agent | None = agents.load(repo, name)
    except AgentNotFound:
        record = None
    except CorruptRecord:
        return  # shown as such by fracta list; not a leftover
    if record is not None:
        _settle_record(repo, record, entry is not None, result)
        if entry is not None:
            journal.remove(repo, name)
        return
    if entry is not None and entry.workspace_kind != workspaces.GIT:
        journal.remove(repo, name)  # a directory spawn that made no record: the folder is the user's
        result.abandoned.append(name)
        return
    path = workspaces.worktree_path(repo, name)
    branch = _branch(name, entry, registered)
    # A folder there that git does not know as a worktree, and no journal made, is not fracta's.
    have_tree = registered is not None or (entry is not None and path.exists())
    have_branch = git.branch_exists(repo.root, branch)
    if not have_tree and not have_branch:
        if entry is not None:
            journal.remove(repo, name)  # died before creating anything: nothing to adopt
            result.abandoned.append(name)
        return
    why, short = _leftover_reason(path, branch if have_branch else None, have_tree, entry, registered)
    _adopt(repo, name, entry, path, branch, why, short)
    journal.remove(repo, name)
    result.adopted[name] = why


def _branch(name: str, entry: journal.Entry | None, registered: workspaces.Registered | None) -> str:
    """The branch a leftover's agent owns: as journaled, else as checked out there if an agent's."""
    if entry is not None and entry.branch:
        return entry.branch
    if registered is not None and registered.branch and registered.branch.startswith(workspaces.BRANCH_PREFIX):
        return registered.branch
    return workspaces.branch_for(name)


def _leftover_reason(
    path: Path,
    branch: str | None,
    have_tree: bool,
    entry: journal.Entry | None,
    registered: workspaces.Registered | None,
) -> tuple[str, str]:
    """(the full reason, its short form for the intent)."""
    pieces = ([f"worktree {path}"] if have_tree else []) + ([f"branch {branch}"] if branch else [])
    found = " and ".join(pieces)
    if entry is not None:
        why = f"a spawn interrupted at {entry.started_at} (its process died) left {found}; no agent ran in it"
        short = "left by an interrupted spawn"
    else:
        why = f"found {found} with no agent record (left by a crash or an older fracta)"
        short = "worktree without an agent record"
    if registered is not None and registered.locked == "initializing":
        why += "; git had not finished checking it out, so some of its files may be missing"
    return why + ". Merge it, or remove it with fracta kill (which refuses while it holds unsaved work)", short


def _adopt(
    repo: Repo, name: str, entry: journal.Entry | None, path: Path, branch: str, why: str, short: str
) -> agents.Agent:
    record = agents.new(
        name,
        runtime=entry.runtime if entry is not None else "command",
        status=agents.Status.LOST,
        kind="spawned",
        workspace=str(path),
        workspace_kind=workspaces.GIT,
        branch=branch,
        base=entry.base if entry is not None else None,
        command=list(entry.command) if entry is not None else [],
        intent=ADOPTED_INTENT.format(what=short),
        error=why,
        finished_at=clock.now(),
    )
    try:
        agents.create(repo, record)
    except AgentExists:  # joined meanwhile under that name: it is an agent now
        return agents.load(repo, name)
    events.record(repo, "agent.adopted", agent=name, reason=why)
    log.warning("adopted a leftover as an agent", extra={"event": "adopt.adopted", "agent": name, "reason": why})
    return record


def _settle_record(repo: Repo, record: agents.Agent, journaled: bool, result: Recovery) -> None:
    """A record exists: make it whole if the spawn died between record and mission, or say its
    worktree is gone."""
    if journaled:
        queued = record.status == agents.Status.QUEUED
        if queued and not any(m.name == record.name for m in missions.pending(repo)[0]):
            why = "a spawn interrupted (its process died) before it queued the agent's start; it never ran"
            _mark_lost(repo, record.name, why, "left by an interrupted spawn")
            result.adopted[record.name] = why
        else:
            result.completed.append(record.name)
    if _worktree_gone(record):
        _annotate_gone(repo, record, result)


def _gone_reason(repo: Repo, agent: agents.Agent) -> str:
    branch = agent.branch or workspaces.branch_for(agent.name)
    return f"its worktree {agent.workspace} is gone (branch {branch} is kept if it exists)"


def _annotate_gone(repo: Repo, record: agents.Agent, result: Recovery) -> None:
    why = _gone_reason(repo, record)
    if record.status in (agents.Status.STARTING, agents.Status.RUNNING):
        return  # its process may still run: the reaper settles it first, we look again next sweep
    if why in (record.error or ""):
        return
    if record.status == agents.Status.QUEUED:  # it would start in a folder that is not there
        missions.drop_agent(repo, record.name)
        _mark_lost(repo, record.name, why, "worktree gone")
    else:
        error = f"{record.error}; {why}" if record.error else why
        agents.update(repo, record.name, error=error)
    events.record(repo, "agent.adopted", agent=record.name, reason=why)
    result.annotated[record.name] = why


def _mark_lost(repo: Repo, name: str, why: str, short: str) -> None:
    agents.update(
        repo,
        name,
        status=agents.Status.LOST,
        error=why,
        intent=ADOPTED_INTENT.format(what=short),
        finished_at=clock.now(),
    )
