"""Settling agents from their Jobs' status, as the runner would have: the reaper of Job agents.

The pod's runner records the start and the exit of its run in the store itself; this only acts
when the store still says `starting` or `running` for the very launch a Job ran and that Job has
ended or vanished — the runner was killed (activeDeadlineSeconds, OOM, eviction, a node lost)
or could not record. Then, as the local reaper does: the runner's exit record if it wrote one
(exit.json on the volume, newer than the launch), else `failed` with Kubernetes' reason for a
Job that failed, else `lost`. A Job of an earlier turn, or of an agent killed and removed,
changes nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ... import agents, atomic, clock, events, missions, progress, runner
from ...errors import AgentNotFound, CorruptRecord, FractaError
from ...repo import Repo
from . import status
from .status import Turn

log = logging.getLogger("fracta.launchers.kubernetes")
ACTIVE = (agents.Status.STARTING, agents.Status.RUNNING)
CREATE_GRACE = 60.0  # seconds a launch may wait for its Job to appear in a list (it is being created)


def current_launch(repo: Repo, name: str) -> tuple[str | None, float]:
    """The launch id the agent's latest start wrote, and when (launch.json on the volume)."""
    path = repo.agent_dir(name) / runner.LAUNCH_FILE
    try:
        return str(atomic.read_json(path).get("launch_id") or "") or None, path.stat().st_mtime
    except (FileNotFoundError, CorruptRecord):
        return None, 0.0


def settle(repo: Repo, turn: Turn, gone: bool = False, why: Callable[[Turn], str | None] | None = None) -> str | None:
    """Record how `turn` ended if the store still has it running; returns the status recorded.

    `gone`: its Job was deleted (or is missing from a full list) before it finished.
    `why`: asked only when it settles a failure, for the pod's reason (one more API call).
    """
    if not gone and not turn.finished:
        return None
    try:
        agent = agents.load(repo, turn.agent)
    except (AgentNotFound, CorruptRecord):
        return None  # killed and removed: kill deleted the Job
    launch, written = current_launch(repo, turn.agent)
    if agent.status not in ACTIVE or launch != turn.launch_id:
        return None  # the runner recorded its exit, or this Job ran an earlier turn
    exit_path = repo.agent_dir(turn.agent) / runner.EXIT_FILE
    exit_record = _fresh_exit(exit_path, written)
    if exit_record is not None:
        return _apply(repo, agent, turn, *_from_exit(agent, exit_record))
    if turn.phase == status.FAILED:
        detail = "; ".join(p for p in (turn.reason, why(turn) if why else None) if p)
        error = f"its Kubernetes Job {turn.job} failed" + (f": {detail}" if detail else "")
        return _apply(repo, agent, turn, agents.Status.FAILED, None, error)
    if turn.phase == status.SUCCEEDED:
        error = f"its Kubernetes Job {turn.job} ended but its runner recorded no exit"
    else:
        error = f"its Kubernetes Job {turn.job} was deleted before it finished"
    return _apply(repo, agent, turn, agents.Status.LOST, None, error)


def resync(repo: Repo, jobs: Iterable[dict[str, Any]], why: Callable[[Turn], str | None]) -> list[str]:
    """After a full list: settle each finished turn, and each running launch whose Job is missing."""
    settled: list[str] = []
    seen: set[tuple[str, str]] = set()
    for job in jobs:
        turn = status.turn(job)
        if turn is None:
            continue
        seen.add((turn.agent, turn.launch_id))
        if turn.finished and settle(repo, turn, why=why):
            settled.append(turn.agent)
    everyone, _ = agents.list_all(repo)
    for agent in everyone:
        if agent.kind != "spawned" or agent.status not in ACTIVE:
            continue
        launch, written = current_launch(repo, agent.name)
        if launch is None or (agent.name, launch) in seen or time.time() - written < CREATE_GRACE:
            continue  # its Job is listed, or is being created right now
        missing = Turn(job=f"for launch {launch}", agent=agent.name, launch_id=launch, phase=status.PENDING)
        if settle(repo, missing, gone=True):
            settled.append(agent.name)
    return settled


def _fresh_exit(path: Path, launched: float) -> dict[str, Any] | None:
    """The runner's exit record if it was written for this launch (after launch.json), else None."""
    try:
        if path.stat().st_mtime < launched:
            return None  # an earlier turn's
        return atomic.read_json(path)
    except (FileNotFoundError, CorruptRecord):
        return None


def _from_exit(agent: agents.Agent, record: dict[str, Any]) -> tuple[agents.Status, int | None, str | None]:
    from ... import runtimes

    code = record.get("exit_code")
    if not isinstance(code, int):
        return agents.Status.FAILED, None, "its runner's exit record has no exit code"
    found = agents.Status(runtimes.get(agent.runtime).finished_status(code))
    if found == agents.Status.IDLE and not agent.session_id:
        found = agents.Status.DONE  # idle means resumable: without a session there is nothing to resume
    error = record.get("error")
    return found, code, error if isinstance(error, str) else None


def _apply(
    repo: Repo, agent: agents.Agent, turn: Turn, found: agents.Status, code: int | None, error: str | None
) -> str | None:
    def change(current: agents.Agent) -> agents.Agent | None:
        if current.status not in ACTIVE:
            return None  # its runner recorded meanwhile
        return dataclasses.replace(
            current, status=found, exit_code=code, error=error, finished_at=clock.now(), pid=None, pid_start=None
        )

    try:
        if agents.modify(repo, agent.name, change).status != found:
            return None
    except AgentNotFound:
        return None
    if found == agents.Status.LOST:
        events.record(repo, "agent.lost", agent=agent.name, job=turn.job, error=error)
        log.warning(error, extra={"event": "agent.lost", "agent": agent.name})
    else:
        data = {"exit_code": code, "status": found.value, "reconciled": True, "job": turn.job}
        events.record(repo, "agent.exited", agent=agent.name, **data)
    with contextlib.suppress(FractaError, OSError):
        progress.refresh(repo)
    missions.wake(repo)  # its slot is free: the spawner looks again now
    return found.value
