"""What each agent is doing, as the chessmaster needs to know it: a state and its reason.

Derived from facts, never guessed from idle time: the record's status, when the agent last
printed anything (its output.jsonl, appended by the runner line by line), the messages it sent the
chessmaster that the chessmaster has not read, and the chessmaster's last action.

  needs-you  waits for the chessmaster: asked a question (it runs), finished and reported (it
             stopped), failed since the chessmaster last acted, or stopped at its budget
  working    runs and printed something within agents.stall_after seconds
  stalled    runs, and printed nothing for agents.stall_after seconds
  idle       its session waits for a message (or it waits in the queue)
  done       finished, or killed
  failed     failed or lost, and the chessmaster has acted since
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

from . import clock, names
from .records import Agent, Delivery, Status
from .repo import Repo

NEEDS_YOU, WORKING, STALLED, IDLE, DONE, FAILED = "needs-you", "working", "stalled", "idle", "done", "failed"
STATES = (NEEDS_YOU, WORKING, STALLED, IDLE, DONE, FAILED)
OUTPUT_FILE = "output.jsonl"  # runner.OUTPUT_FILE (not imported: the runner's imports are heavy)


@dataclass(frozen=True)
class AgentState:
    state: str
    reason: str


@dataclass(frozen=True)
class Facts:
    """What the derivation needs besides the record, gathered once for the whole fleet."""

    now: float
    stall_after: float
    reports: Mapping[str, list[Delivery]]  # agent -> its messages to the chessmaster not yet read
    last_action_at: float | None  # when the chessmaster last acted (epoch seconds)


def gather(repo: Repo) -> Facts:
    reports: dict[str, list[Delivery]] = {}
    for d in repo.store.mail.listing(names.CHESSMASTER):
        if d.state != "read":
            reports.setdefault(d.message.sender, []).append(d)
    action = repo.store.last_action()
    return Facts(
        now=time.time(),
        stall_after=float(repo.config.integer("agents.stall_after", minimum=1)),
        reports=reports,
        last_action_at=clock.parse(action[1]) if action else None,
    )


def last_output(repo: Repo, agent: Agent) -> float | None:
    """When the agent last printed anything (epoch seconds), or when its run started."""
    try:
        return os.stat(repo.agent_dir(agent.name) / OUTPUT_FILE).st_mtime
    except FileNotFoundError:
        return clock.parse(agent.started_at) if agent.started_at else None


def derive(agent: Agent, facts: Facts, printed_at: float | None) -> AgentState:
    """The agent's state and why."""
    status = agent.status
    if agent.stopped:
        return AgentState(NEEDS_YOU, f"stopped: {agent.stopped}")
    if status in (Status.FAILED, Status.LOST):
        why = agent.error or ("its process vanished" if status == Status.LOST else "it failed")
        ended = clock.parse(agent.finished_at) if agent.finished_at else None
        unseen = ended is not None and (facts.last_action_at is None or facts.last_action_at < ended)
        return AgentState(NEEDS_YOU if unseen else FAILED, f"{status.value}: {why}")
    reports = facts.reports.get(agent.name)
    if reports:
        last = reports[-1].message
        said = (last.subject or last.body).strip().splitlines()[0][:80] if (last.subject or last.body).strip() else ""
        running = status in (Status.RUNNING, Status.STARTING, Status.QUEUED)
        what = "asked" if running else "finished and reported"
        more = f" ({len(reports)} unread)" if len(reports) > 1 else ""
        return AgentState(NEEDS_YOU, f"{what}: {said}{more}")
    if status in (Status.RUNNING, Status.STARTING):
        if printed_at is None:
            return AgentState(WORKING, "starting")
        quiet = max(0.0, facts.now - printed_at)
        if quiet >= facts.stall_after:
            return AgentState(STALLED, f"no output for {_span(quiet)} (stall_after {_span(facts.stall_after)})")
        return AgentState(WORKING, f"last output {_span(quiet)} ago")
    if status == Status.QUEUED:
        return AgentState(IDLE, "queued")
    if status == Status.IDLE:
        return AgentState(IDLE, "its session waits for a message")
    if status == Status.KILLED:
        return AgentState(DONE, "killed")
    return AgentState(DONE, "finished" + (f" (exit {agent.exit_code})" if agent.exit_code else ""))


def of(repo: Repo, agent: Agent, facts: Facts) -> AgentState:
    return derive(agent, facts, last_output(repo, agent))


def _span(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    return f"{s // 3600}h"
