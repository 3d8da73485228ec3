"""Watching real AI CLI agents under the scripted model: their states, tokens and cost, a budget
stopping a Claude agent at its turn's end, a refused spawn, and the wake story of a message."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from ai_clis import enter_isolated_env, runtime_options
from conftest import CliRunner
from lifecycle_helpers import cleanup, use_free_port, wait_for
from scripted_model import ScriptedModel, say

from fracta import agents, liveness, mailbox, results
from fracta import repo as repo_mod

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def llm() -> Iterator[ScriptedModel]:
    with ScriptedModel() as model:
        yield model


def configure(
    r: repo_mod.Repo, llm: ScriptedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **edits: str
) -> None:
    """Claude pointed at the scripted model, in an isolated environment; `edits` replace fracta.yaml text."""
    enter_isolated_env(tmp_path / "env", monkeypatch)
    text = r.config_path.read_text().replace(
        "agent_runtimes: {}", f"agent_runtimes: {json.dumps({'claude': runtime_options('claude', llm)})}"
    )
    for old, new in edits.items():
        text = text.replace(old, new)
    r.config_path.write_text(text)
    use_free_port(r)


def view(r: repo_mod.Repo, name: str) -> dict[str, object]:
    found, problems = liveness.checked(r)
    return next(v for v in results.agent_list(r, found, problems)["agents"] if v["name"] == name)


def run_ok(cli: CliRunner, *args: str) -> str:
    done = cli(*args)
    assert done.returncode == 0, f"fracta {' '.join(args)}: {done.stderr}"
    return done.stdout


def test_a_claude_agent_reports_idles_and_is_woken_and_its_message_tells_how_the_wake_ended(
    initialized: repo_mod.Repo, llm: ScriptedModel, cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(initialized, llm, tmp_path, monkeypatch)
    r = repo_mod.find(initialized.root)
    model = llm.agent("helper", [say("ready"), say("woken, and not reading my inbox")])
    with cleanup(r):
        run_ok(cli, "spawn", "helper", "--runtime", "claude", "--prompt", "Wait for instructions.")
        wait_for("helper to idle", lambda: agents.load(r, "helper").status == agents.Status.IDLE, 120)
        idle = view(r, "helper")
        assert (idle["state"], idle["state_reason"]) == ("idle", "its session waits for a message"), idle
        used = idle["usage"]
        assert isinstance(used, dict) and used["total"] > 0 and used["cost_usd"] is not None, used

        said = run_ok(cli, "say", "helper", "please carry on")
        assert "woke helper" in said
        wait_for(
            "the woken run to end",
            lambda: len(model.model_calls()) >= 2 and agents.load(r, "helper").status == agents.Status.IDLE,
            120,
        )
        [story] = json.loads(run_ok(cli, "inbox", "--sent", "chessmaster", "--json"))["messages"]
        assert story["state"] == "stored" and story["wake"] == "woken; the run ended idle (exit 0)", story
        assert "woken; the run ended idle" in run_ok(cli, "inbox", "--sent", "chessmaster")
        again = view(r, "helper")
        assert isinstance(again["usage"], dict) and again["usage"]["total"] > used["total"]  # two turns counted


def test_a_budget_stops_a_claude_agent_at_its_turns_end_and_refuses_the_next_spawn(
    initialized: repo_mod.Repo, llm: ScriptedModel, cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(
        initialized,
        llm,
        tmp_path,
        monkeypatch,
        **{"    agent: {}": "    agent: {tokens: 1}", "    fleet: {}": "    fleet: {tokens: 1}"},
    )
    r = repo_mod.find(initialized.root)
    model = llm.agent("spender", [say("one whole turn")])
    with cleanup(r):
        run_ok(cli, "spawn", "spender", "--runtime", "claude", "--prompt", "Say something.")
        wait_for("the budget to stop spender", lambda: agents.load(r, "spender").stopped, 120)
        record = agents.load(r, "spender")
        assert record.status == agents.Status.IDLE and len(model.model_calls()) == 1  # its turn ran to its end
        assert record.stopped and record.stopped.startswith("its budget reached: "), record
        stopped = view(r, "spender")
        assert stopped["state"] == "needs-you" and str(stopped["state_reason"]).startswith("stopped: its budget")
        told = [m for m in mailbox.read(r, "chessmaster").messages if m.sender == "spender"]
        assert [m.subject for m in told] == ["spender stopped: budget reached"], told

        said = cli("say", "spender", "carry on")  # it will never read it: stored, and said so
        assert said.returncode == 0 and "undeliverable to spender" in said.stderr, said.stderr
        assert agents.load(r, "spender").status == agents.Status.IDLE and len(model.model_calls()) == 1

        refused = cli("spawn", "another", "--runtime", "claude", "--prompt", "More.")
        assert refused.returncode == 5, refused.stderr
        assert "cannot spawn another: the fleet's budget reached" in refused.stderr
        assert "another" not in [a.name for a in agents.list_all(r)[0]]
