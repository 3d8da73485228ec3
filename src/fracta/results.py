"""The structured-output contract: the shapes of --json output, HTTP bodies and MCP results.

Every document carries `version`; tests/test_contract.py pins the shapes. Bump VERSION on any
incompatible change and document it in docs/json.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import agents, clock, liveness, mailbox, states, usage
from .errors import CorruptRecord, FractaError
from .repo import Repo

if TYPE_CHECKING:
    from .lifecycle import KillResult

VERSION = 1


def agent_view(
    repo: Repo, agent: agents.Agent, queue: dict[str, str] | None = None, facts: states.Facts | None = None
) -> dict[str, Any]:
    """One agent; `queue` is liveness.waiting() of the whole list (computed here if not given),
    `facts` what its state is derived from (gathered here if not given)."""
    data = agent.to_dict()
    data.pop("schema", None)
    now = states.of(repo, agent, facts or states.gather(repo))
    data["state"], data["state_reason"] = now.state, now.reason
    data["usage"] = usage.Usage.from_dict(agent.usage).to_dict()
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
    facts = states.gather(repo)
    views = [agent_view(repo, a, queue, facts) for a in found]
    return {
        "version": VERSION,
        "agents": views,
        "problems": [problem_view(p) for p in problems],
        "totals": totals(views),
    }


def totals(views: list[dict[str, Any]]) -> dict[str, Any]:
    """The fleet at a glance: agents by state, tokens and cost, queued and unread."""
    by_state = {state: sum(1 for v in views if v["state"] == state) for state in states.STATES}
    used = usage.total(usage.Usage.from_dict(v["usage"]) for v in views).to_dict()
    used.pop("model", None)
    queued = sum(1 for v in views if v["status"] == agents.Status.QUEUED)
    return {"agents": len(views), "states": by_state, "usage": used, "queued": queued}


def fleet_line(totals: dict[str, Any]) -> str:
    """`totals` in one line: agents 5: 1 needs-you, 2 working · 1.2M tokens · $3.40 · 1 queued"""
    counts = ", ".join(f"{n} {state}" for state, n in totals["states"].items() if n)
    line = f"agents {totals['agents']}" + (f": {counts}" if counts else "")
    line += f" · {usage.tokens_text(totals['usage'])} tokens · {usage.cost_text(totals['usage'])}"
    return line + (f" · {totals['queued']} queued" if totals["queued"] else "")


def sent_states(sender: str, found: list[Any]) -> dict[str, Any]:
    """`fracta inbox --sent`: what became of the sender's messages (delivery.MessageState)."""
    return {"version": VERSION, "sender": sender, "messages": [m.to_dict() for m in found]}


def correspondence(found: Any) -> dict[str, Any]:
    """An agent's messages both ways with their delivery states (correspondence.Correspondence)."""
    return {
        "version": VERSION,
        "agent": found.agent,
        "received": [m.to_dict() for m in found.received],
        "sent": [m.to_dict() for m in found.sent],
    }


def inbox(name: str, box: mailbox.Inbox) -> dict[str, Any]:
    return {
        "version": VERSION,
        "agent": name,
        "messages": [m.to_dict() for m in box.messages],
        "problems": [problem_view(p) for p in box.problems],
        "receipt": box.receipt,
    }


def sent(messages: list[mailbox.Message], undeliverable: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "version": VERSION,
        "sent": [m.to_dict() for m in messages],
        "duplicates": [m.id for m in messages if m.duplicate],
        "undeliverable": dict(undeliverable or {}),
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


def merge_preview(found: Any) -> dict[str, Any]:
    """What merge would do now (merge.MergePreview)."""
    return {"version": VERSION, **found.to_dict()}


def branch_state(found: Any) -> dict[str, Any]:
    """An agent's branch against the integration branch (branches.BranchStatus)."""
    return {"version": VERSION, **found.to_dict()}


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
