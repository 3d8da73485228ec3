"""Watching the swarm: usage from real runtime output, budgets, and what became of messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fracta import agents, budget, delivery, mailbox, messaging, runtimes, states, usage, wake
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
