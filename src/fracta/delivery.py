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


WAKE_EVENTS = ("agent.woken", "agent.wake_refused", "agent.wake_failed", "agent.started", "agent.exited")


def _wakes(repo: Repo, waiting: dict[str, list[str]]) -> dict[str, list[dict[str, Any]]]:
    """The wake-related events of each recipient in `waiting` (name -> send times of its stored
    messages) from its oldest stored message on, oldest first, however long the log: looked up
    by agent and time (EventStore.about), and read only until every story is told."""
    found: dict[str, list[dict[str, Any]]] = {name: [] for name in waiting}
    if not waiting:
        return found
    open_ = {name: max(times) for name, times in waiting.items()}  # told once its newest message's is
    since = min(min(times) for times in waiting.values())
    for event in repo.store.events.about(list(waiting), WAKE_EVENTS, since):
        name = str(event.data.get("agent"))
        if name not in open_:
            continue
        found[name].append(event.data)
        if _wake_story(found[name], open_[name])[1]:
            del open_[name]
            if not open_:
                break
    return found


def _wake_story(history: list[dict[str, Any]], sent_at: str) -> tuple[str | None, bool]:
    """How the first wake after `sent_at` went: started, running, ended (idle/done/failed), refused,
    failed; and whether that is its end."""
    story: str | None = None
    for data in history:
        if str(data.get("ts", "")) < sent_at:
            continue
        kind = data["event"]
        if story is None:
            if kind == "agent.woken":
                story = "wake started"
            elif kind == "agent.wake_refused":
                return f"wake refused: {data.get('reason')}", True
            elif kind == "agent.wake_failed":
                return f"wake failed: {data.get('error')}", True
        elif kind == "agent.started":
            story = "woken: running"
        elif kind == "agent.exited":
            return f"woken; the run ended {data.get('status')} (exit {data.get('exit_code')})", True
    return story, False


def states(repo: Repo, found: list[Delivery], recipients: dict[str, Agent | None]) -> list[MessageState]:
    alert_after = repo.config.integer("mailbox.unread_alert", minimum=1)
    waiting: dict[str, list[str]] = {}
    for d in found:
        if d.state == "stored" and d.message.to != names.CHESSMASTER:
            waiting.setdefault(d.message.to, []).append(d.message.sent_at)
    history = _wakes(repo, waiting)
    now = time.time()
    out: list[MessageState] = []
    for d in found:
        msg = d.message
        agent = recipients.get(msg.to)
        at = clock.stamp(d.at_ns / 1e9) if d.at_ns else None
        wake = _wake_story(history.get(msg.to, []), msg.sent_at)[0] if d.state == "stored" else None
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
                if d.alerted or age >= alert_after:  # flagged by the control plane (flag_unread), or due
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
    # By the store's index of what `sender` sent (MailStore.sent_by), not by reading every inbox.
    found = [
        d for d in repo.store.mail.sent_by(sender) if d.message.to in recipients or d.message.to == names.CHESSMASTER
    ]
    return states(repo, found, recipients)


def flag_unread(repo: Repo, only: frozenset[str] | None = None, now_ns: int | None = None) -> list[MessageState]:
    """Record `message.unread` once for each message a running agent (of `only`, if given) has left
    unread past mailbox.unread_alert; returns those messages. The control plane calls it on its
    sweeps, so `fracta watch`, the web view and the event stream hear of it."""
    after_ns = repo.config.integer("mailbox.unread_alert", minimum=1) * 1_000_000_000
    now_ns = time.time_ns() if now_ns is None else now_ns
    everyone, _ = agents.list_all(repo)
    running = [
        a for a in everyone if a.status in (Status.RUNNING, Status.STARTING) and (only is None or a.name in only)
    ]
    flagged: list[MessageState] = []
    for agent in running:
        try:
            waiting = repo.store.mail.flag_unread(agent.name, now_ns - after_ns)
        except AgentNotFound:
            continue  # removed meanwhile
        for msg in waiting:
            waited = int((now_ns / 1e9) - clock.parse(msg.sent_at))
            alert = f"unread for {waited}s while {msg.to} runs"
            events.record(repo, "message.unread", agent=msg.to, sender=msg.sender, id=msg.id, waited_s=waited)
            flagged.append(
                MessageState(
                    msg.id,
                    msg.sender,
                    msg.to,
                    msg.sent_at,
                    msg.subject,
                    "stored",
                    None,
                    None,
                    alert,
                    f"stored in {msg.to}'s inbox; {alert}",
                )
            )
    return flagged


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
