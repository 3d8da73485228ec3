"""Waking idle agents: a message to an agent whose session can be resumed queues a resume of it.

The resume goes through the mission queue like a spawn, so max_agents and the runner's recording
apply; the spawner sees the agent's session id and has the adapter resume that session with a
short prompt to read the inbox. A running agent is never interrupted (it reads the message at its
next fracta_inbox), and nothing is ever typed into a terminal. Config: `agents.wake` (default on).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

from . import agents, budget, events, mailbox, missions, names
from .errors import AgentNotFound, ConfigError
from .records import Message
from .repo import Repo


def enabled(repo: Repo) -> bool:
    value = repo.config.resolved("agents.wake")
    if isinstance(value, bool):
        return value
    if str(value).lower() in {"true", "yes", "on", "1", "false", "no", "off", "0"}:
        return str(value).lower() in {"true", "yes", "on", "1"}
    raise ConfigError(f"agents.wake in {repo.config.path.name} must be true or false, not {value!r}")


def after_send(repo: Repo, sent: Iterable[Message], kick: Callable[[], None] | None = None) -> list[str]:
    """Wake every idle, resumable recipient of `sent`; returns the names woken.

    `kick` wakes an in-process spawner (the control plane's faces pass it); without one (the
    CLI) the control plane is started if none runs, so the queued resume is picked up.
    """
    recipients = list(dict.fromkeys(m.to for m in sent if m.to != names.CHESSMASTER))
    if not recipients or not enabled(repo):
        return []
    woken = [name for name in recipients if resume(repo, name)]
    if woken:
        if kick is not None:
            kick()
        else:
            from .control import daemon

            daemon.up(repo)
    return woken


def after_run(repo: Repo, name: str, since_ns: int) -> bool:
    """Called by the runner when an agent goes idle: resume it if a message came while it ran, unread.

    Only messages sent after the run started count, so an agent that never reads its inbox is
    woken once for each message, not in a loop.
    """
    return mailbox.unread_since(repo, name, since_ns) and enabled(repo) and resume(repo, name)


def resume(repo: Repo, name: str) -> bool:
    """Queue a resume of `name`'s session if it is idle and its runtime can resume; True if queued."""
    with repo.store.missions.scheduling():  # the spawner's lock: it sees both changes or neither
        try:
            agent = agents.load(repo, name)
        except AgentNotFound:
            return False
        if agent.status != agents.Status.IDLE or not agent.session_id:
            return False
        if agent.stopped or budget.reached(repo, agent):
            events.record(repo, "agent.wake_refused", agent=name, reason=agent.stopped or budget.reached(repo, agent))
            return False
        from . import runtimes  # only now: `fracta say` to a running agent stays light

        if not runtimes.get(agent.runtime).resumable:
            return False
        # The mission first: if we die before the status change, the spawner drops the mission
        # of an agent that is not queued, and the message still waits in the inbox.
        mission = missions.enqueue(repo, name, agent.runtime, None, [])
        queued = agents.modify(repo, name, _queue_if_idle)
        if queued.status != agents.Status.QUEUED:
            missions.remove(repo, mission)
            return False
    events.record(repo, "agent.woken", agent=name, session_id=agent.session_id)
    return True


def _queue_if_idle(agent: agents.Agent) -> agents.Agent | None:
    if agent.status != agents.Status.IDLE:  # another process woke it, or it was killed, meanwhile
        return None
    return dataclasses.replace(agent, status=agents.Status.QUEUED)
