"""The claude, codex and opencode runtimes end to end: `fracta spawn` starts the real CLI as an
agent, the scripted model makes it call fracta's MCP tools through the gateway, and what those
tools did lands in .fracta/. Waking resumes an idle agent's real session.

The CLIs come from scripts/setup-ai-clis (tests/ai_clis.py); without them these tests skip, loudly.
Runtime options in fracta.yaml point each CLI at the scripted model, one path per agent
(`{{agent}}` in the options), with its own HOME: nothing of the host's login or config is used.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from ai_clis import enter_isolated_env, require_cli, runtime_options
from conftest import CliRunner
from lifecycle_helpers import cleanup, use_free_port, wait_for
from scripted_model import Agent, ScriptedModel, call, say

from fracta import agents, mailbox
from fracta import repo as repo_mod

pytestmark = pytest.mark.timeout(240)
# USD per million tokens for the scripted model ("fake-model"): Codex and OpenCode report no cost
# for it, so fracta prices their tokens from this table.
PRICE = {"input": 2.0, "output": 8.0}


@pytest.fixture
def llm() -> Iterator[ScriptedModel]:
    """The scripted model server every agent of a test talks to."""
    with ScriptedModel() as model:
        yield model


@pytest.fixture
def project(
    initialized: repo_mod.Repo, llm: ScriptedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[repo_mod.Repo]:
    """A repo whose runtimes all talk to the scripted model; the control plane runs in an isolated env."""
    enter_isolated_env(tmp_path / "env", monkeypatch)
    table = {r: runtime_options(r, llm) for r in ("claude", "codex", "opencode")}
    text = initialized.config_path.read_text().replace("agent_runtimes: {}", f"agent_runtimes: {json.dumps(table)}")
    text = text.replace("pricing: {}", f"pricing: {json.dumps({'fake-model': PRICE})}")
    initialized.config_path.write_text(text)
    use_free_port(initialized)
    with cleanup(initialized):
        yield initialized


def spawn(cli: CliRunner, name: str, runtime: str, task: str) -> None:
    result = cli("spawn", name, "--runtime", runtime, "--prompt", task)
    assert result.returncode == 0, result.stderr


def settled(r: repo_mod.Repo, name: str, timeout: float = 90.0) -> agents.Agent:
    """Wait until the agent's run is over (idle, done or failed) and return its record."""
    wait_for(f"{name} to finish", lambda: agents.load(r, name).status.value in {"idle", "done", "failed"}, timeout)
    return agents.load(r, name)


def explain(r: repo_mod.Repo, name: str, model: Agent) -> str:
    """What went wrong, for assertion messages: the agent's record, output and the model's view."""
    out = r.agent_dir(name) / "output.jsonl"
    tail = out.read_text()[-3000:] if out.exists() else "(no output)"
    return f"record: {agents.load(r, name)}\noutput: {tail}\nmodel saw: {model.tool_results()}"


@pytest.mark.parametrize("runtime", ["claude", "codex", "opencode"])
def test_a_spawned_cli_agent_sets_its_intent_and_messages_the_chessmaster_then_idles(
    project: repo_mod.Repo, llm: ScriptedModel, cli: CliRunner, runtime: str
) -> None:
    name = f"{runtime}-agent"
    model = llm.agent(
        name,
        [
            call("fracta_set_intent", name=name, intent=f"testing the {runtime} adapter"),
            call("fracta_send", {"from": name, "to": "chessmaster", "message": f"done from {runtime}"}),
            say("FINAL"),
        ],
    )
    spawn(cli, name, runtime, "Report to the chessmaster.")
    agent = settled(project, name)
    why = explain(project, name, model)
    assert agent.status == agents.Status.IDLE, why
    assert agent.session_id, why
    assert agent.tokens_used and agent.tokens_used > 0, why
    assert agent.intent == f"testing the {runtime} adapter", why
    inbox = mailbox.read(project, "chessmaster")
    assert [(m.sender, m.body) for m in inbox.messages] == [(name, f"done from {runtime}")], why
    # The model got the prompt with the task and the coordination rules, and both tools' results.
    first = model.model_calls()[0].conversation
    assert first is not None and any("Report to the chessmaster." in t and name in t for t in first.user_texts)
    assert [r.is_error for r in model.tool_results()] == [False, False], why
    peeked = cli("peek", name, "-n", "50")
    assert peeked.returncode == 0, peeked.stderr
    assert f"fracta_set_intent(name='{name}'" in peeked.stdout, peeked.stdout
    assert "fracta_send(from=" in peeked.stdout, peeked.stdout
    listed = json.loads(cli("list", "--json").stdout)
    assert [a["tokens_used"] for a in listed["agents"]] == [agent.tokens_used]
    # Tokens and cost from the CLI's own JSON stream match what the scripted model reported: every
    # scripted turn (a model call offering tools) answered 100 in and 10 out.
    [used] = [a["usage"] for a in listed["agents"]]
    turns = len(model.model_calls())
    assert turns >= 3 and (used["input"] + used["cache_read"], used["output"]) == (100 * turns, 10 * turns), why
    assert used["total"] == agent.tokens_used == 110 * turns, used
    if runtime == "claude":  # Claude Code reports its own cost
        assert used["cost_usd"] > 0 and not used["estimated"], used
    else:  # priced from fracta.yaml's table, and marked so
        expected = (used["input"] * PRICE["input"] + used["output"] * PRICE["output"]) / 1e6
        assert used["estimated"] and used["cost_usd"] == pytest.approx(expected), used
    assert listed["totals"]["usage"]["total"] == used["total"], listed["totals"]
    # Per-agent config lives in the agent's folder, private, and the worktree stays clean.
    private = {"claude": "claude-mcp.json", "codex": "codex-home/config.toml", "opencode": "opencode.json"}[runtime]
    assert (project.agent_dir(name) / private).stat().st_mode & 0o077 == 0
    assert agents.load(project, name).workspace
    if runtime == "codex":  # it ran the native binary, not npm's Node launcher
        argv = json.loads((project.agent_dir(name) / "launch.json").read_text())["argv"]
        assert argv[0].endswith("/bin/codex") and os.access(argv[0], os.X_OK), argv[0]
    status = cli("status")
    assert status.returncode == 0


def test_claude_agents_message_each_other_wake_an_idle_peer_and_cannot_read_anothers_inbox(
    project: repo_mod.Repo, llm: ScriptedModel, cli: CliRunner
) -> None:
    b = llm.agent("b", [say("ready"), call("fracta_inbox", name="b"), say("got it")])
    spawn(cli, "b", "claude", "Wait for a message from a.")
    first = settled(project, "b")
    assert first.status == agents.Status.IDLE, explain(project, "b", b)
    a = llm.agent(
        "a",
        [
            call("fracta_send", {"from": "a", "to": "b", "message": "hello b, main is ready"}),
            call("fracta_inbox", name="b"),  # someone else's inbox: refused
            say("FINAL"),
        ],
    )
    spawn(cli, "a", "claude", "Tell b that main is ready.")
    assert settled(project, "a").status == agents.Status.IDLE, explain(project, "a", a)
    sent, refused = a.tool_results()
    assert not sent.is_error, explain(project, "a", a)
    assert refused.is_error and "inbox" in refused.text, refused
    # The message woke b: its session was resumed and the resumed run read the inbox.
    got = b.wait_for("b to read its inbox", lambda m: [r for r in m.tool_results() if "hello b" in r.text])
    assert not got[0].is_error
    wait_for(
        "b to be idle again",
        lambda: agents.load(project, "b").status == agents.Status.IDLE and len(b.model_calls()) >= 3,
    )
    again = agents.load(project, "b")
    assert again.session_id and again.tokens_used and again.tokens_used > (first.tokens_used or 0)
    assert mailbox.unread_count(project, "b") == 0
    events = [json.loads(line) for line in project.events_path.read_text().splitlines()]
    assert any(e.get("event") == "agent.woken" and e.get("agent") == "b" for e in events)


def test_fracta_say_wakes_an_idle_codex_agent_whose_resumed_session_reads_the_inbox(
    project: repo_mod.Repo, llm: ScriptedModel, cli: CliRunner
) -> None:
    model = llm.agent(
        "worker",
        [
            call("fracta_set_intent", name="worker", intent="waiting for instructions"),
            say("waiting"),
            call("fracta_inbox", name="worker"),
            say("on it"),
        ],
    )
    spawn(cli, "worker", "codex", "Wait for instructions from the chessmaster.")
    first = settled(project, "worker")
    assert first.status == agents.Status.IDLE and first.session_id, explain(project, "worker", model)
    said = cli("say", "worker", "please add a changelog entry")
    assert said.returncode == 0, said.stderr
    assert "woke worker" in said.stdout
    got = model.wait_for(
        "the resumed run to read the inbox", lambda m: [r for r in m.tool_results() if "changelog" in r.text]
    )
    assert not got[0].is_error
    wait_for(
        "worker to be idle again",
        lambda: agents.load(project, "worker").status == agents.Status.IDLE and len(model.model_calls()) >= 4,
    )
    assert agents.load(project, "worker").session_id == first.session_id  # the same session, resumed


def test_wake_off_leaves_an_idle_agent_idle_with_the_message_waiting(
    project: repo_mod.Repo, llm: ScriptedModel, cli: CliRunner
) -> None:
    project.config_path.write_text(project.config_path.read_text().replace("wake: true", "wake: false"))
    llm.agent("sleeper", [say("nothing to do")])
    spawn(cli, "sleeper", "codex", "Wait.")
    assert settled(project, "sleeper").status == agents.Status.IDLE
    said = cli("say", "sleeper", "are you there?")
    assert said.returncode == 0 and "woke" not in said.stdout
    assert agents.load(project, "sleeper").status == agents.Status.IDLE
    assert mailbox.unread_count(project, "sleeper") == 1


def test_a_missing_cli_binary_is_refused_at_spawn_naming_the_runtime_and_the_key(
    project: repo_mod.Repo, cli: CliRunner
) -> None:
    text = project.config_path.read_text().replace(str(require_cli("codex")), "/nowhere/codex")
    project.config_path.write_text(text)
    result = cli("spawn", "lost", "--runtime", "codex", "--prompt", "anything")
    assert result.returncode != 0
    assert "codex" in result.stderr and "agents.agent_runtimes.codex.binary" in result.stderr
    assert not agents.exists(project, "lost")
