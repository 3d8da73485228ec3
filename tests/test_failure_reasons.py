"""Why an agent failed is on its record, in `fracta list` and `--json`; a wake that cannot start
leaves the agent idle and its session resumable."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from conftest import CliRunner
from lifecycle_helpers import cleanup, spawn, use_free_port, wait_status

from fracta import agents, mailbox, missions, spawner, wake
from fracta import repo as repo_mod

PY = sys.executable


@pytest.fixture
def fr(initialized: repo_mod.Repo, monkeypatch: pytest.MonkeyPatch) -> repo_mod.Repo:
    use_free_port(initialized)
    monkeypatch.setenv("PATH", f"{Path(PY).parent}{os.pathsep}{os.environ['PATH']}")
    return initialized


def test_a_failed_agent_says_why_in_list_and_json(fr: repo_mod.Repo, cli: CliRunner) -> None:
    with cleanup(fr):
        spawn(cli, "broke", PY, "-c", "import sys; print('working'); sys.exit('cannot reach the model at :1')")
        wait_status(fr, "broke", "failed")
        record = agents.load(fr, "broke")
        assert record.exit_code == 1
        assert record.error == "exit code 1: cannot reach the model at :1"
        listed = cli("list")
        why = "why:\n  broke needs-you: failed: exit code 1: cannot reach the model at :1"
        assert why in listed.stdout, listed.stdout
        data = json.loads(cli("list", "--json").stdout)
        assert [a["error"] for a in data["agents"]] == ["exit code 1: cannot reach the model at :1"]


def test_an_agent_that_ends_cleanly_has_no_failure_reason(fr: repo_mod.Repo, cli: CliRunner) -> None:
    with cleanup(fr):
        spawn(cli, "fine", PY, "-c", "import sys; print('warning: noisy stderr', file=sys.stderr)")
        wait_status(fr, "fine", "done")
        assert agents.load(fr, "fine").error is None
        assert "why:" not in cli("list").stdout


def test_a_wake_that_cannot_start_leaves_the_agent_idle_and_wakeable(initialized: repo_mod.Repo) -> None:
    r = initialized
    gone = r.root / "no-such-claude"
    r.config_path.write_text(
        r.config_path.read_text().replace("agent_runtimes: {}", f"agent_runtimes: {{claude: {{binary: {gone}}}}}")
    )
    r = repo_mod.find(r.root, env={})
    agents.create(r, agents.new("sleeper", runtime="claude", status=agents.Status.IDLE, session_id="s-1"))
    sent = mailbox.send(r, "chessmaster", "sleeper", "main moved; run git merge main")
    assert wake.after_send(r, sent, kick=lambda: None) == ["sleeper"]
    [mission] = missions.pending(r)[0]
    started: list[str] = []

    def launch(repo: repo_mod.Repo, name: str) -> tuple[int, int | None]:
        started.append(name)
        return 0, None

    spawner.start(r, agents.load(r, "sleeper"), mission, spawner.Urls(gateway="http://127.0.0.1:1/mcp"), launch)
    after = agents.load(r, "sleeper")
    assert started == []  # nothing ran
    assert after.status == agents.Status.IDLE and after.session_id == "s-1"
    assert after.error is not None and after.error.startswith("could not wake it: cannot find the claude CLI")
    assert mailbox.unread_count(r, "sleeper") == 1  # the message still waits
    missions.remove(r, mission)
    # The next message tries again.
    again = mailbox.send(r, "chessmaster", "sleeper", "still there?")
    assert wake.after_send(r, again, kick=lambda: None) == ["sleeper"]
    assert agents.load(r, "sleeper").status == agents.Status.QUEUED
