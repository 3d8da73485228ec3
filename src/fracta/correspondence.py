"""An agent's messages both ways, each with its delivery state (fracta.delivery), reading nothing:
looking never marks a message read nor hands it out."""

from __future__ import annotations

from dataclasses import dataclass

from . import agents, delivery, names
from .delivery import MessageState
from .errors import AgentNotFound
from .repo import Repo

LIMIT = 200  # the latest messages each way, at most


@dataclass(frozen=True)
class Correspondence:
    agent: str
    received: list[MessageState]  # messages in its inbox, oldest first
    sent: list[MessageState]  # messages it sent that are still in an inbox, oldest first


def of(repo: Repo, name: str, limit: int = LIMIT) -> Correspondence:
    """`name`'s inbox and its sent messages, with where each stands (AgentNotFound if no such agent)."""
    names.validate_participant(name)
    everyone, _ = agents.list_all(repo)
    recipients: dict[str, agents.Agent | None] = {a.name: a for a in everyone}
    if name != names.CHESSMASTER and name not in recipients:
        raise AgentNotFound(f"no agent named {name!r}", "run fracta list to see the agents")
    try:
        inbox = repo.store.mail.listing(name)
    except AgentNotFound:
        inbox = []  # removed meanwhile: nothing waits for it
    received = delivery.states(repo, inbox[-limit:], recipients)
    return Correspondence(name, received, delivery.sent(repo, name)[-limit:])
