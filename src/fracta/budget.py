"""Budgets (agents.budget): caps on tokens and cost, per agent and for the fleet.

An agent is never stopped mid-turn: a turn (a run of its runtime) ends on its own, and at that
boundary the runner asks `settle`; an agent at its cap is marked `stopped` and never woken or run
again, and the chessmaster is told. A spawn or wake that the budget does not allow is refused
(BudgetReached) before anything starts.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from . import agents, events, names, usage
from .errors import BudgetReached
from .repo import Repo


def _caps(repo: Repo, scope: str) -> tuple[int | None, float | None]:
    node: Any = repo.config.data.get("agents", {}).get("budget", {}) or {}
    cap = node.get(scope) or {}
    tokens, cost = cap.get("tokens"), cap.get("cost_usd")
    return (int(tokens) if tokens is not None else None, float(cost) if cost is not None else None)


def _over(used: usage.Usage, caps: tuple[int | None, float | None], what: str) -> str | None:
    tokens, cost = caps
    if tokens is not None and used.total >= tokens:
        return f"{what} budget reached: {used.total} of {tokens} tokens"
    if cost is not None and used.cost_usd is not None and used.cost_usd >= cost:
        return f"{what} budget reached: ${used.cost_usd:.4f} of ${cost:.2f}"
    return None


def reached(repo: Repo, agent: agents.Agent, fleet: list[agents.Agent] | None = None) -> str | None:
    """Why `agent` may not run again (its own cap, or the fleet's), or None."""
    own = _over(usage.Usage.from_dict(agent.usage), _caps(repo, "agent"), "its")
    if own:
        return own
    caps = _caps(repo, "fleet")
    if caps == (None, None):
        return None
    everyone = fleet if fleet is not None else agents.list_all(repo)[0]
    return _over(usage.total(usage.Usage.from_dict(a.usage) for a in everyone), caps, "the fleet's")


def check_spawn(repo: Repo, name: str) -> None:
    """Refuse a spawn when the fleet's budget is spent."""
    caps = _caps(repo, "fleet")
    if caps == (None, None):
        return
    spent = usage.total(usage.Usage.from_dict(a.usage) for a in agents.list_all(repo)[0])
    why = _over(spent, caps, "the fleet's")
    if why:
        raise BudgetReached(f"cannot spawn {name}: {why}", "raise agents.budget.fleet in fracta.yaml")


def check_wake(repo: Repo, agent: agents.Agent) -> None:
    """Refuse to wake `agent` when it (or the fleet) has reached its budget."""
    why = agent.stopped or reached(repo, agent)
    if why:
        raise BudgetReached(
            f"cannot wake {agent.name}: {why}", "raise agents.budget in fracta.yaml, or merge or kill the agent"
        )


def settle(repo: Repo, name: str) -> str | None:
    """At the end of `name`'s turn: if its budget is reached, mark it stopped and tell the chessmaster.

    Returns why it was stopped (None if it may go on)."""
    agent = agents.load(repo, name)
    if agent.stopped or agent.status == agents.Status.KILLED:
        return agent.stopped
    why = reached(repo, agent)
    if why is None:
        return None
    marked = agents.modify(repo, name, lambda a: None if a.stopped else dataclasses.replace(a, stopped=why))
    if marked.stopped != why:
        return marked.stopped  # another process stopped it meanwhile: it told the chessmaster
    events.record(repo, "agent.budget_stopped", agent=name, reason=why)
    from . import mailbox

    used = usage.Usage.from_dict(agent.usage)
    cost = f", ${used.cost_usd:.4f}" if used.cost_usd is not None else ""
    body = f"fracta stopped {name} at the end of its turn: {why} ({used.total} tokens{cost}). It will not be woken."
    mailbox.send(repo, name, names.CHESSMASTER, body, subject=f"{name} stopped: budget reached")
    return why
