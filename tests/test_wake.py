"""The wake decision on real .fracta/ files: who is resumed after a send, and who never is.

The real resume of a real CLI session is in tests/test_runtimes_e2e.py.
"""

from __future__ import annotations

import time

import pytest

from fracta import agents, mailbox, missions, wake
from fracta import repo as repo_mod

pytestmark = pytest.mark.both_backends


def make(
    r: repo_mod.Repo, name: str, status: agents.Status, session: str | None = "s-1", runtime: str = "claude"
) -> None:
    agents.create(r, agents.new(name, runtime=runtime, status=status, session_id=session))


def woken_by_message(r: repo_mod.Repo, to: str) -> list[str]:
    kicks: list[int] = []
    sent = mailbox.send(r, "chessmaster", to, "please carry on")
    woken = wake.after_send(r, sent, kick=lambda: kicks.append(1))
    assert bool(kicks) == bool(woken)
    return woken


def test_a_message_to_an_idle_agent_queues_a_resume_of_its_session(initialized: repo_mod.Repo) -> None:
    make(initialized, "idle-one", agents.Status.IDLE)
    assert woken_by_message(initialized, "idle-one") == ["idle-one"]
    assert agents.load(initialized, "idle-one").status == agents.Status.QUEUED
    [mission] = missions.pending(initialized)[0]
    assert (mission.name, mission.prompt) == ("idle-one", None)  # the adapter renders the wake prompt
    assert woken_by_message(initialized, "idle-one") == []  # already queued: one resume, not two
    assert len(missions.pending(initialized)[0]) == 1


@pytest.mark.parametrize(
    ("status", "session", "runtime"),
    [
        (agents.Status.RUNNING, "s-1", "claude"),  # never interrupted: it reads at its next fracta_inbox
        (agents.Status.DONE, "s-1", "claude"),
        (agents.Status.IDLE, None, "claude"),  # nothing to resume
        (agents.Status.IDLE, "s-1", "command"),  # a runtime that cannot resume
    ],
)
def test_agents_that_cannot_be_resumed_keep_the_message_for_later(
    initialized: repo_mod.Repo, status: agents.Status, session: str | None, runtime: str
) -> None:
    make(initialized, "other", status, session, runtime)
    assert woken_by_message(initialized, "other") == []
    assert agents.load(initialized, "other").status == status
    assert missions.pending(initialized)[0] == []
    assert mailbox.unread_count(initialized, "other") == 1


def test_wake_off_in_fracta_yaml_leaves_idle_agents_idle(initialized: repo_mod.Repo) -> None:
    initialized.config_path.write_text(initialized.config_path.read_text().replace("wake: true", "wake: false"))
    r = repo_mod.find(initialized.root, env={})
    make(r, "sleeper", agents.Status.IDLE)
    assert woken_by_message(r, "sleeper") == []
    assert agents.load(r, "sleeper").status == agents.Status.IDLE


def test_a_broadcast_wakes_every_idle_agent_but_not_the_chessmaster(initialized: repo_mod.Repo) -> None:
    make(initialized, "a", agents.Status.IDLE)
    make(initialized, "b", agents.Status.IDLE)
    make(initialized, "c", agents.Status.RUNNING)
    sent = mailbox.send(initialized, "chessmaster", "*", "main moved")
    assert sorted(wake.after_send(initialized, sent, kick=lambda: None)) == ["a", "b"]


def test_an_agent_going_idle_is_woken_only_for_messages_that_came_while_it_ran(initialized: repo_mod.Repo) -> None:
    make(initialized, "worker", agents.Status.IDLE)
    mailbox.send(initialized, "chessmaster", "worker", "sent before the run")
    started = time.time_ns()
    assert not wake.after_run(initialized, "worker", started)  # it was woken for that one already
    mailbox.send(initialized, "chessmaster", "worker", "sent during the run, never read")
    assert wake.after_run(initialized, "worker", started)
    assert agents.load(initialized, "worker").status == agents.Status.QUEUED
