"""The structured-output contract: the shapes of --json output, HTTP bodies and MCP results.

Every document carries `version`; tests/test_contract.py pins the shapes. Bump VERSION on any
incompatible change and document it in docs/json.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import agents, clock, liveness, mailbox
from .errors import CorruptRecord, FractaError
from .repo import Repo

if TYPE_CHECKING:
    from .lifecycle import KillResult

VERSION = 1


def agent_view(repo: Repo, agent: agents.Agent, queue: dict[str, str] | None = None) -> dict[str, Any]:
    """One agent; `queue` is liveness.waiting() of the whole list (computed here if not given)."""
    data = agent.to_dict()
    data.pop("schema", None)
    seen = agents.last_activity(repo, agent.name)
    data["unread"] = mailbox.unread_count(repo, agent.name)
    data["last_activity"] = clock.stamp(seen) if seen else None
    if queue is None and agent.status == agents.Status.QUEUED:
        queue = liveness.waiting(repo, agents.list_all(repo)[0])
    data["waiting"] = (queue or {}).get(agent.name)
    return data


def problem_view(problem: CorruptRecord) -> dict[str, Any]:
    return {"path": str(problem.path), "error": problem.message}


def agent_list(repo: Repo, found: list[agents.Agent], problems: list[CorruptRecord]) -> dict[str, Any]:
    queue = liveness.waiting(repo, found)
    return {
        "version": VERSION,
        "agents": [agent_view(repo, a, queue) for a in found],
        "problems": [problem_view(p) for p in problems],
    }


def inbox(name: str, box: mailbox.Inbox) -> dict[str, Any]:
    return {
        "version": VERSION,
        "agent": name,
        "messages": [m.to_dict() for m in box.messages],
        "problems": [problem_view(p) for p in box.problems],
        "receipt": box.receipt,
    }


def sent(messages: list[mailbox.Message]) -> dict[str, Any]:
    return {
        "version": VERSION,
        "sent": [m.to_dict() for m in messages],
        "duplicates": [m.id for m in messages if m.duplicate],
    }


def intent(agent: agents.Agent) -> dict[str, Any]:
    return {"version": VERSION, "agent": agent.name, "intent": agent.intent}


def joined(agent: agents.Agent, env: dict[str, str]) -> dict[str, Any]:
    return {"version": VERSION, "agent": agent.name, "env": env}


def error(exc: FractaError) -> dict[str, Any]:
    body: dict[str, Any] = {"type": type(exc).__name__, "message": exc.message, "hint": exc.hint}
    details = getattr(exc, "details", None)  # a strategy's failed step: its name, the finished steps' results
    if details is not None:
        body["details"] = details
    return {"version": VERSION, "error": body}


def killed(result: KillResult) -> dict[str, Any]:
    """fracta kill: what was stopped and, with --force, where the work was saved."""
    saved = result.saved
    return {
        "version": VERSION,
        "agent": result.name,
        "stopped": result.stopped,
        "saved": None if saved is None else {"ref": saved.ref, "commit": saved.commit, "restore": saved.restore_hint},
    }


def merged(result: Any) -> dict[str, Any]:
    """fracta merge: what was merged into which branch, and who was told."""
    return {
        "version": VERSION,
        "agent": result.agent,
        "branch": result.branch,
        "into": result.into,
        "sha": result.sha,
        "previous": result.previous,
        "fast_forward": result.fast_forward,
        "already_up_to_date": result.already_up_to_date,
        "notified": list(result.notified),
    }
