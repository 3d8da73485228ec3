from __future__ import annotations

import json
from pathlib import Path

from conftest import CliRunner, git

from fracta import repo as repo_mod


def test_init_creates_state_config_and_exclude_and_is_safe_twice(repo_dir: Path, cli: CliRunner) -> None:
    first = cli("init")
    assert first.returncode == 0, first.stderr
    assert (repo_dir / ".fracta" / "agents").is_dir()
    assert (repo_dir / "fracta.yaml").read_text().startswith("# fracta.yaml")
    assert ((repo_dir / ".fracta" / "token").stat().st_mode & 0o777) == 0o600
    second = cli("init")
    assert second.returncode == 0
    assert "already initialized" in second.stdout
    exclude = (repo_dir / ".git" / "info" / "exclude").read_text()
    assert exclude.count("/.fracta/") == 1
    status = git(repo_dir, "status", "--porcelain", "--untracked-files=all").splitlines()
    # fracta.yaml, and the AI CLIs' MCP config files wired to `fracta serve` (tests/test_wiring.py)
    assert status == [
        "?? .claude/settings.json",
        "?? .codex/config.toml",
        "?? .mcp.json",
        "?? fracta.yaml",
        "?? opencode.json",
    ]


def test_commands_before_init_say_what_to_run(cli: CliRunner) -> None:
    result = cli("list")
    assert result.returncode == 2
    assert "fracta init" in result.stderr


def test_commands_outside_a_repo_say_so(tmp_path: Path, cli: CliRunner) -> None:
    outside = tmp_path / "nowhere"
    outside.mkdir()
    result = cli("list", cwd=outside)
    assert result.returncode == 2
    assert "not inside a git repository" in result.stderr


def test_join_say_inbox_intent_list_round_trip(initialized: repo_mod.Repo, cli: CliRunner) -> None:
    joined = cli("join", "api", "--intent", "design endpoints")
    assert joined.returncode == 0, joined.stderr
    assert "export FRACTA_AGENT=api" in joined.stdout
    assert "FRACTA_TOKEN=" in joined.stdout
    assert cli("say", "api", "hello there").returncode == 0
    listed = json.loads(cli("list", "--json").stdout)
    assert listed["version"] == 1
    assert listed["agents"][0]["unread"] == 1
    inbox = json.loads(cli("inbox", "api", "--json").stdout)
    assert [m["body"] for m in inbox["messages"]] == ["hello there"]
    assert inbox["messages"][0]["from"] == "chessmaster"
    assert json.loads(cli("inbox", "api", "--json").stdout)["messages"] == []
    assert cli("intent", "api", "now: reviewing").returncode == 0
    assert cli("intent", "api").stdout.strip() == "now: reviewing"
    assert "now: reviewing" in initialized.progress_path.read_text()


def test_commands_from_a_linked_worktree_find_the_main_state(
    initialized: repo_mod.Repo, repo_dir: Path, cli: CliRunner, tmp_path: Path
) -> None:
    wt = repo_dir / ".fracta" / "worktrees" / "side"
    git(repo_dir, "worktree", "add", "-q", str(wt), "-b", "feature/side")
    (wt / "sub").mkdir()
    assert cli("join", "side", cwd=wt / "sub").returncode == 0
    outside_wt = tmp_path / "elsewhere"
    git(repo_dir, "worktree", "add", "-q", str(outside_wt), "-b", "feature/elsewhere")
    listed = json.loads(cli("list", "--json", cwd=outside_wt).stdout)
    assert [a["name"] for a in listed["agents"]] == ["side"]
    assert repo_mod.find(wt / "sub", env={}).root == repo_dir


def test_every_command_module_entry_resolves_and_none_is_missing() -> None:
    import importlib

    import click

    from fracta.cli import main

    declared = set()
    for module in set(main.COMMAND_MODULES.values()):
        declared |= {c.name for c in importlib.import_module(f"fracta.cli.{module}").COMMANDS}
    assert declared == set(main.COMMAND_MODULES)
    ctx = click.Context(main.cli)
    assert all(main.cli.get_command(ctx, name) is not None for name in main.COMMAND_MODULES)


def test_help_lists_the_commands(cli: CliRunner) -> None:
    result = cli("--help")
    assert result.returncode == 0
    for name in ("spawn", "merge", "kill", "say", "inbox", "serve"):
        assert name in result.stdout


def test_peek_at_a_joined_agent_shows_no_output_rather_than_an_error(
    initialized: repo_mod.Repo, cli: CliRunner
) -> None:
    assert cli("join", "byhand").returncode == 0
    result = cli("peek", "byhand", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["events"] == []
