"""What became of a message: stored, read (by its recipient, when), whether a wake was started for
it and how that ended, flagged when a running recipient leaves it unread too long, and
undeliverable when its recipient will never read it (killed, failed, finished with no session to
resume, stopped at its budget). Works on every store (MailStore.listing and the event log).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from . import agents, clock, events, names
from .errors import AgentNotFound
from .records import Agent, Delivery, Status
from .repo import Repo


@dataclass(frozen=True)
class MessageState:
    id: str
    sender: str
    to: str
    sent_at: str
    subject: str | None
    state: str  # stored | handed | read | undeliverable
    at: str | None  # handed: when it was handed out; read: when its reading was confirmed
    wake: str | None  # for a recipient that was idle: the wake started for it and how it ended
    alert: str | None  # unread past mailbox.unread_alert while its recipient runs
    reason: str  # the whole story in one line

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def never_read(agent: Agent | None) -> str | None:
    """Why `agent` will never read another message (None: it may)."""
    if agent is None:
        return "its recipient was removed"
    if agent.stopped:
        return f"{agent.name} was stopped ({agent.stopped}) and will not be woken"
    if agent.status == Status.KILLED:
        return f"{agent.name} was killed"
    if agent.status in (Status.FAILED, Status.LOST):
        return f"{agent.name} {agent.status.value} and cannot be woken"
    if agent.status == Status.DONE:
        return f"{agent.name} is done and has no session to resume"
    return None


WAKE_WINDOW = 5000  # the last events looked at for wake stories (a wake older than that is not told)


def _wakes(repo: Repo, who: set[str]) -> dict[str, list[dict[str, Any]]]:
    """The wake-related events of agents `who` among the log's last WAKE_WINDOW, oldest first.

    Bounded: `inbox --sent` must not read a long-lived project's whole log (tail reads only the
    end of the file, or the last rows)."""
    kinds = {"agent.woken", "agent.wake_refused", "agent.wake_failed", "agent.started", "agent.exited"}
    found: dict[str, list[dict[str, Any]]] = {}
    if not who:
        return found
    for event in events.tail(repo, WAKE_WINDOW):
        data = event.data
        if data.get("agent") in who and data.get("event") in kinds:
            found.setdefault(str(data["agent"]), []).append(data)
    return found


def _wake_story(history: list[dict[str, Any]], sent_at: str) -> str | None:
    """How the first wake after `sent_at` went: started, running, ended (idle/done/failed), refused, failed."""
    story: str | None = None
    for data in history:
        if str(data.get("ts", "")) < sent_at:
            continue
        kind = data["event"]
        if story is None:
            if kind == "agent.woken":
                story = "wake started"
            elif kind == "agent.wake_refused":
                return f"wake refused: {data.get('reason')}"
            elif kind == "agent.wake_failed":
                return f"wake failed: {data.get('error')}"
        elif kind == "agent.started":
            story = "woken: running"
        elif kind == "agent.exited":
            return f"woken; the run ended {data.get('status')} (exit {data.get('exit_code')})"
    return story


def states(repo: Repo, found: list[Delivery], recipients: dict[str, Agent | None]) -> list[MessageState]:
    alert_after = repo.config.integer("mailbox.unread_alert", minimum=1)
    waiting = {d.message.to for d in found if d.state == "stored"}
    history = _wakes(repo, {n for n in waiting if n != names.CHESSMASTER})
    now = time.time()
    out: list[MessageState] = []
    for d in found:
        msg = d.message
        agent = recipients.get(msg.to)
        at = clock.stamp(d.at_ns / 1e9) if d.at_ns else None
        wake = _wake_story(history.get(msg.to, []), msg.sent_at) if d.state == "stored" else None
        alert = None
        state, reason = (
            d.state,
            {"handed": f"handed to {msg.to} at {at}", "read": f"read by {msg.to} at {at}"}.get(
                d.state, f"stored in {msg.to}'s inbox"
            ),
        )
        if d.state == "stored":
            why = None if msg.to == names.CHESSMASTER else never_read(agent)
            if why:
                state, reason = "undeliverable", f"undeliverable: {why}"
            elif agent is not None and agent.status in (Status.RUNNING, Status.STARTING):
                age = now - clock.parse(msg.sent_at)
                if age >= alert_after:
                    alert = f"unread for {int(age)}s while {msg.to} runs"
                    reason += f"; {alert}"
            if wake and state != "undeliverable":
                reason += f"; {wake}"
        out.append(MessageState(msg.id, msg.sender, msg.to, msg.sent_at, msg.subject, state, at, wake, alert, reason))
    return out


def sent(repo: Repo, sender: str) -> list[MessageState]:
    """What became of every message `sender` sent that is still in an inbox, oldest first."""
    names.validate_participant(sender)
    everyone, _ = agents.list_all(repo)
    recipients: dict[str, Agent | None] = {a.name: a for a in everyone}
    if sender != names.CHESSMASTER and sender not in recipients:
        raise AgentNotFound(f"no agent named {sender!r}", "run fracta list to see the agents")
    found: list[Delivery] = []
    for name in [names.CHESSMASTER, *recipients]:
        try:
            found += [d for d in repo.store.mail.listing(name) if d.message.sender == sender]
        except AgentNotFound:
            continue  # removed meanwhile
    return states(repo, sorted(found, key=lambda d: d.message.id), recipients)


def undeliverable(repo: Repo, sent_to: list[str]) -> dict[str, str]:
    """Recipients among `sent_to` that will never read what was just sent them, and why."""
    out: dict[str, str] = {}
    for name in dict.fromkeys(sent_to):
        if name == names.CHESSMASTER:
            continue
        try:
            why = never_read(agents.load(repo, name))
        except AgentNotFound:
            why = never_read(None)
        if why:
            out[name] = why
    return out
