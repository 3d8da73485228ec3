"""Watching the swarm: usage from real runtime output, budgets, and what became of messages."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import CliRunner

from fracta import agents, budget, delivery, events, mailbox, messaging, runtimes, states, usage, wake
from fracta import repo as repo_mod
from fracta.errors import BudgetReached

pytestmark = pytest.mark.both_backends
DATA = Path(__file__).parent / "data" / "runtime_output"


@pytest.mark.parametrize(
    ("runtime", "fixture", "model", "reported"),
    [
        ("claude", "claude-tools", None, True),
        ("codex", "codex-tools", "gpt-5", False),
        ("opencode", "opencode-tools", "gpt-5", False),
    ],
)
def test_each_runtimes_usage_events_add_up_to_tokens_and_a_cost(
    runtime: str, fixture: str, model: str | None, reported: bool
) -> None:
    prices = usage.table(None)
    used = usage.Usage()
    for line in (DATA / f"{fixture}.jsonl").read_text().splitlines():
        for event in runtimes.get(runtime).parse(json.loads(line)):
            if event.kind == "usage":
                used = used + usage.from_event(event.data, event.data.get("model") or model, prices)
    assert used.total > 0 and used.output > 0
    assert used.cost_usd is not None and used.cost_usd > 0
    assert used.estimated is not reported  # Claude reports its cost; the others are priced from the table


def test_a_message_to_a_killed_agent_is_reported_undeliverable(initialized: repo_mod.Repo) -> None:
    agents.create(initialized, agents.new("gone", runtime="command", status=agents.Status.KILLED))
    done = messaging.send(initialized, "chessmaster", "gone", "are you there?", kick=lambda: None)
    assert done.undeliverable == {"gone": "gone was killed"}
    [followed] = delivery.sent(initialized, "chessmaster")
    assert (followed.to, followed.state) == ("gone", "undeliverable")


def test_a_message_goes_from_stored_to_handed_to_read(initialized: repo_mod.Repo) -> None:
    agents.create(initialized, agents.new("busy", runtime="command", status=agents.Status.RUNNING))
    mailbox.send(initialized, "chessmaster", "busy", "hello")
    assert [m.state for m in delivery.sent(initialized, "chessmaster")] == ["stored"]
    box = mailbox.read(initialized, "busy")
    [handed] = delivery.sent(initialized, "chessmaster")
    assert handed.state == "handed" and handed.at is not None
    mailbox.acknowledge(initialized, "busy", box.receipt)
    [read] = delivery.sent(initialized, "chessmaster")
    assert read.state == "read" and read.at is not None and "read by busy" in read.reason


def test_an_agent_over_its_budget_is_stopped_and_never_woken(initialized: repo_mod.Repo) -> None:
    cfg = initialized.config_path
    cfg.write_text(cfg.read_text().replace("    agent: {}", "    agent: {tokens: 100}"))
    r = repo_mod.find(initialized.root, env={})
    spent = usage.Usage(input=90, output=20).to_dict()
    agents.create(r, agents.new("spender", runtime="claude", status=agents.Status.IDLE, session_id="s", usage=spent))
    assert budget.settle(r, "spender") == "its budget reached: 110 of 100 tokens"
    record = agents.load(r, "spender")
    assert record.stopped
    facts = states.gather(r)
    assert states.of(r, record, facts).state == states.NEEDS_YOU
    told = mailbox.read(r, "chessmaster").messages
    assert any("spender stopped" in (m.subject or "") for m in told)
    assert wake.resume(r, "spender") is False
    with pytest.raises(BudgetReached):
        budget.check_wake(r, record)


def test_inbox_sent_follows_a_senders_messages_by_its_index_not_by_every_inbox(initialized: repo_mod.Repo) -> None:
    r = initialized
    for name in ("a", "b", "c"):
        agents.create(r, agents.new(name, runtime="command", status=agents.Status.RUNNING))
    first = messaging.send(r, "chessmaster", "a", "one", kick=lambda: None).sent[0]
    messaging.send(r, "a", "b", "from a", kick=lambda: None)
    second = messaging.send(r, "chessmaster", "b", "two", kick=lambda: None).sent[0]
    mailbox.send(r, "chessmaster", "c", "three")
    mailbox.acknowledge(r, "a", mailbox.read(r, "a").receipt)
    followed = delivery.sent(r, "chessmaster")
    assert [(m.to, m.state) for m in followed] == [("a", "read"), ("b", "stored"), ("c", "stored")]
    assert [m.id for m in followed][:2] == [first.id, second.id]
    assert [(m.sender, m.to) for m in delivery.sent(r, "a")] == [("a", "b")]
    assert delivery.sent(r, "b") == []
    agents.remove(r, "c")  # its inbox went with it: nothing left to follow there
    assert [m.to for m in delivery.sent(r, "chessmaster")] == ["a", "b"]
    if r.store.backend == "files":  # a project from before the index: built once, from one scan
        (r.state / "sent-index").unlink()
        for name in ("chessmaster", "a"):
            (r.inbox_dir(name) / "sent").unlink()
        assert [m.to for m in delivery.sent(r, "chessmaster")] == ["a", "b"]
        assert [m.to for m in delivery.sent(r, "a")] == ["b"] and (r.state / "sent-index").exists()


def test_a_message_a_running_agent_leaves_unread_too_long_is_flagged_once_with_an_event(
    initialized: repo_mod.Repo, cli: CliRunner
) -> None:
    r = initialized
    agents.create(r, agents.new("busy", runtime="command", status=agents.Status.RUNNING))
    agents.create(r, agents.new("resting", runtime="command", status=agents.Status.IDLE))
    waiting = mailbox.send(r, "chessmaster", "busy", "hello")[0]
    mailbox.send(r, "chessmaster", "resting", "not running: not flagged")
    assert delivery.flag_unread(r) == []  # not yet past mailbox.unread_alert
    later = time.time_ns() + 601 * 10**9
    [flagged] = delivery.flag_unread(r, now_ns=later)
    assert (flagged.id, flagged.to, flagged.alert) == (waiting.id, "busy", "unread for 601s while busy runs")
    assert delivery.flag_unread(r, now_ns=later + 10**9) == []  # once per message
    told = [e.data for e in events.read(r) if e.data["event"] == "message.unread"]
    assert [(e["agent"], e["sender"], e["id"]) for e in told] == [("busy", "chessmaster", waiting.id)]
    [shown] = [m for m in delivery.sent(r, "chessmaster") if m.to == "busy"]
    assert shown.alert and "unread for" in shown.reason
    listed = cli("inbox", "--sent", "chessmaster")
    assert listed.returncode == 0 and "unread for" in listed.stdout, listed.stdout
    mailbox.read(r, "busy")  # read at last: no longer flagged, never flagged again
    assert [m.alert for m in delivery.sent(r, "chessmaster") if m.to == "busy"] == [None]


def test_the_wake_story_of_a_message_is_told_however_long_the_event_log(initialized: repo_mod.Repo) -> None:
    r = initialized
    agents.create(r, agents.new("sleeper", runtime="claude", status=agents.Status.IDLE, session_id="s"))
    old = {"v": 1, "ts": "2020-01-01T00:00:00.000Z", "event": "agent.exited", "agent": "sleeper", "status": "failed"}
    for _ in range(300):  # an old story of the same agent, before the message: not this message's
        r.store.events.append(old)
    mailbox.send(r, "chessmaster", "sleeper", "wake up")
    events.record(r, "agent.woken", agent="sleeper", session_id="s")
    events.record(r, "agent.started", agent="sleeper", pid=1)
    events.record(r, "agent.exited", agent="sleeper", exit_code=0, status="idle")
    for n in range(5100):  # more than the 5,000 last events the story used to be looked for in
        events.record(r, "message.sent", agent="other", id=str(n))
    [story] = delivery.sent(r, "chessmaster")
    assert story.wake == "woken; the run ended idle (exit 0)", story
