"""Compose mode without Docker: the real control plane (`fracta up`) with the container launcher,
managed directory workspaces under a temporary root and the suite's real PostgreSQL: spawn,
message, wake, peek, kill, reaper and the refused merge, as local mode's tests check them."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest
from conftest import CliRunner, git
from lifecycle_helpers import cleanup, output_lines, script, spawn, status, wait_for, wait_status

from fracta import agents, config_check, mailbox
from fracta import repo as repo_mod
from fracta.errors import ConfigError

PY = sys.executable


@pytest.fixture
def state_backend() -> str:
    return "postgres"  # the container launcher needs a store its agents share


@pytest.fixture
def compose(initialized: repo_mod.Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> repo_mod.Repo:
    """A repository configured as the Compose scaffold configures the control plane's container."""
    root = tmp_path / "workspace" / "agents"
    text = initialized.config_path.read_text()
    text = text.replace("  kind: git ", "  kind: directory ", 1).replace("  root: /workspace/agents", f"  root: {root}")
    text = text.replace("  kind: local ", "  kind: container ", 1)
    initialized.config_path.write_text(text)
    monkeypatch.setenv("PATH", f"{Path(PY).parent}{os.pathsep}{os.environ['PATH']}")
    return repo_mod.find(initialized.root, env={})


def folder(r: repo_mod.Repo, name: str) -> Path:
    return Path(agents.load(r, name).workspace or "")


def test_an_agent_runs_in_its_own_folder_under_the_root_hears_messages_and_peek_shows_it(
    compose: repo_mod.Repo, cli: CliRunner
) -> None:
    gate = compose.root.parent / "gate"
    worker = script(
        compose.root.parent,
        "worker.sh",
        'echo "working in $PWD"\n'
        f"while [ ! -e {gate} ]; do sleep 0.05; done\n"
        "fracta inbox --json > inbox.json\n"
        "echo result > result.txt\n",
    )
    with cleanup(compose):
        spawn(cli, "api", "sh", str(worker))
        expected = Path(str(compose.config.get("workspaces.root"))) / "api"
        assert folder(compose, "api") == expected.resolve()
        assert agents.load(compose, "api").branch is None
        wait_for("the agent's first line", lambda: output_lines(compose, "api"))
        said = cli("say", "api", "use the v2 schema")
        assert said.returncode == 0, said.stderr
        gate.touch()
        wait_status(compose, "api", "done")
        peeked = cli("peek", "api", "--json")
        assert peeked.returncode == 0, peeked.stderr
        assert f"working in {expected.resolve()}" in [e["text"] for e in json.loads(peeked.stdout)["events"]]
        assert (expected / "result.txt").read_text() == "result\n"
        assert "use the v2 schema" in (expected / "inbox.json").read_text()


def test_kill_refuses_a_folder_with_files_and_force_moves_it_aside_whole(
    compose: repo_mod.Repo, cli: CliRunner
) -> None:
    with cleanup(compose):
        spawn(cli, "notes", "sh", "-c", "echo draft > notes.txt")
        wait_status(compose, "notes", "done")
        where = folder(compose, "notes")
        refused = cli("kill", "notes")
        assert refused.returncode == 5
        assert "1 file(s) in a folder that is no git repository: notes.txt" in refused.stderr
        assert "--force" in refused.stderr and (where / "notes.txt").exists()
        forced = cli("kill", "notes", "--force", "--json")
        assert forced.returncode == 0, forced.stderr
        saved = Path(json.loads(forced.stdout)["saved"]["ref"])
        assert saved.parent == where.parent / ".archive" / "notes"
        assert (saved / "notes.txt").read_text() == "draft\n"
        assert not where.exists()
        assert not agents.exists(compose, "notes")


def test_kill_refuses_commits_never_pushed_and_removes_the_folder_once_they_are(
    compose: repo_mod.Repo, cli: CliRunner, tmp_path: Path
) -> None:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    work = "git init -q && echo x > x.txt && git add x.txt && git commit -qm first"
    with cleanup(compose):
        spawn(cli, "coder", "sh", "-c", work)
        wait_status(compose, "coder", "done")
        where = folder(compose, "coder")
        refused = cli("kill", "coder")
        assert refused.returncode == 5
        assert "1 commit(s) on no remote-tracking branch" in refused.stderr
        assert "commit and push it from its folder" in refused.stderr
        git(where, "remote", "add", "origin", str(remote))
        git(where, "push", "-q", "origin", "HEAD:refs/heads/main")
        git(where, "fetch", "-q", "origin")
        (where / "y.txt").write_text("uncommitted\n")
        assert "1 uncommitted file(s): y.txt" in cli("kill", "coder").stderr
        (where / "y.txt").unlink()
        killed = cli("kill", "coder", "--json")
        assert killed.returncode == 0, killed.stderr
        assert json.loads(killed.stdout)["saved"] is None
        assert not where.exists()


def test_merge_is_refused_with_what_to_do_instead(compose: repo_mod.Repo, cli: CliRunner) -> None:
    with cleanup(compose):
        spawn(cli, "docs", "true")
        wait_status(compose, "docs", "done")
        merged = cli("merge", "docs")
        assert merged.returncode == 5
        assert "merge is only available for git worktrees" in merged.stderr
        assert "commit and push from the agent's workspace" in merged.stderr


def test_an_agent_whose_runner_is_killed_is_settled_lost_by_the_reaper(compose: repo_mod.Repo, cli: CliRunner) -> None:
    with cleanup(compose):
        spawn(cli, "victim", "sh", "-c", "echo up; exec sleep 600")
        wait_for("the agent to run", lambda: output_lines(compose, "victim"))
        pid = agents.load(compose, "victim").pid
        assert pid is not None
        os.killpg(pid, signal.SIGKILL)
        wait_status(compose, "victim", "lost")
        assert "vanished without an exit record" in (agents.load(compose, "victim").error or "")


def test_a_message_wakes_an_idle_agent_in_its_folder_resuming_its_session(
    compose: repo_mod.Repo, cli: CliRunner, tmp_path: Path
) -> None:
    # A stand-in for Claude Code's CLI: the stream-json line that names its session, its argv kept.
    runs = tmp_path / "runs.jsonl"
    fake = tmp_path / "claude"
    fake.write_text(
        f"#!{PY}\nimport json, os, sys\n"
        f"open({str(runs)!r}, 'a').write(json.dumps({{'argv': sys.argv[1:], 'cwd': os.getcwd()}}) + '\\n')\n"
        "print(json.dumps({'type': 'system', 'subtype': 'init', 'session_id': 'sess-1'}), flush=True)\n"
    )
    fake.chmod(0o755)
    text = compose.config_path.read_text().replace(
        "agent_runtimes: {}", f"agent_runtimes: {{claude: {{binary: {fake}}}}}"
    )
    compose.config_path.write_text(text)
    with cleanup(compose):
        spawned = cli("spawn", "sleeper", "--runtime", "claude", "--prompt", "start")
        assert spawned.returncode == 0, spawned.stderr
        wait_status(compose, "sleeper", "idle")
        assert cli("say", "sleeper", "wake up").returncode == 0
        wait_for("the wake's run", lambda: len(runs.read_text().splitlines()) == 2)
        wait_status(compose, "sleeper", "idle")
        first, second = (json.loads(line) for line in runs.read_text().splitlines())
        assert first["cwd"] == second["cwd"] == str(folder(compose, "sleeper"))
        assert "--resume" not in first["argv"]
        assert second["argv"][second["argv"].index("--resume") + 1] == "sess-1"
        assert status(compose, "sleeper") == "idle"
        assert mailbox.unread_count(compose, "sleeper") == 1  # the stand-in never reads its inbox


@pytest.mark.parametrize(
    ("launcher", "extra", "words"),
    [
        ("container", "", "launcher container needs state.backend postgres"),
        ("kubernetes", "", "launcher kubernetes needs state.backend postgres"),
        ("container", "state:\n  backend: postgres\n  url: postgresql://x@h/d\n", "needs workspaces.kind directory"),
    ],
)
def test_a_container_or_kubernetes_launcher_without_postgres_and_directories_is_a_config_error(
    tmp_path: Path, launcher: str, extra: str, words: str
) -> None:
    path = tmp_path / "fracta.yaml"
    path.write_text(f"launcher:\n  kind: {launcher}\n{extra}")
    with pytest.raises(ConfigError) as caught:
        config_check.check(path, env={})
    assert words in caught.value.message
    assert caught.value.exit_code == 2


def test_the_compose_configuration_passes_the_check(tmp_path: Path) -> None:
    path = tmp_path / "fracta.yaml"
    path.write_text(
        "state:\n  backend: postgres\n  url: ${FRACTA_DATABASE_URL}\n"
        "workspaces:\n  kind: directory\n  root: /workspace/agents\nlauncher:\n  kind: container\n"
    )
    checked = config_check.check(path, env={"FRACTA_DATABASE_URL": "postgresql://u:p@db/fracta"})
    assert checked.settings.launcher.kind == "container"
