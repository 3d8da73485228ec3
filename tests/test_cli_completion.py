"""Shell completion: `fracta completion SHELL` prints the script; the script's questions get answers.

The answers are asked the way the scripts ask them: fracta run as a real process with
_FRACTA_COMPLETE, COMP_WORDS and COMP_CWORD in its environment.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CliRunner

from fracta import repo as repo_mod
from fracta import runtimes


@pytest.mark.parametrize(
    ("shell", "hook"),
    [
        ("bash", "complete -o nosort -F _fracta_completion fracta"),
        ("zsh", "#compdef fracta"),
        ("fish", "complete --no-files --command fracta --arguments"),
    ],
)
def test_completion_prints_the_script_for_each_shell(cli: CliRunner, shell: str, hook: str) -> None:
    result = cli("completion", shell)
    assert result.returncode == 0, result.stderr
    assert hook in result.stdout
    assert f"_FRACTA_COMPLETE={shell}_complete" in result.stdout


def test_completion_of_an_unknown_shell_is_a_usage_error(cli: CliRunner) -> None:
    result = cli("completion", "tcsh")
    assert result.returncode == 2
    assert "'tcsh' is not one of 'bash', 'zsh', 'fish'" in result.stderr


def complete(cli: CliRunner, line: str, cwd: Path | None = None, shell: str = "bash") -> list[str]:
    """What the bash script gets for `line` (the last word is the one being completed)."""
    words = line.split(" ")
    result = cli(
        cwd=cwd,
        env={"_FRACTA_COMPLETE": f"{shell}_complete", "COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return [line for line in result.stdout.splitlines() if line]


@pytest.fixture
def two_agents(initialized: repo_mod.Repo, cli: CliRunner) -> repo_mod.Repo:
    for name in ("web", "api"):
        assert cli("join", name).returncode == 0
    return initialized


def test_agent_names_complete(two_agents: repo_mod.Repo, cli: CliRunner) -> None:
    assert complete(cli, "fracta kill ") == ["plain,api", "plain,web"]
    assert complete(cli, "fracta peek w") == ["plain,web"]
    assert complete(cli, "fracta merge a") == ["plain,api"]
    assert complete(cli, "fracta inbox ") == ["plain,api", "plain,web", "plain,chessmaster"]
    assert complete(cli, "fracta say api hi --from c") == ["plain,chessmaster"]


def test_agent_names_complete_in_zsh_too(two_agents: repo_mod.Repo, cli: CliRunner) -> None:
    assert complete(cli, "fracta intent a", shell="zsh") == ["plain", "api", "_"]


def test_runtimes_complete_from_the_registry(initialized: repo_mod.Repo, cli: CliRunner) -> None:
    offered = complete(cli, "fracta spawn task --runtime ")
    assert offered == [f"plain,{name}" for name in runtimes.names()]
    assert offered == ["plain,claude", "plain,codex", "plain,command", "plain,opencode"]
    assert complete(cli, "fracta spawn task -r co") == ["plain,codex", "plain,command"]


def test_an_unknown_runtime_is_refused_with_the_choices(initialized: repo_mod.Repo, cli: CliRunner) -> None:
    result = cli("spawn", "task", "--runtime", "cluade")
    assert result.returncode == 2
    assert "'cluade' is not one of 'claude', 'codex', 'command', 'opencode'" in result.stderr


def test_command_names_complete_without_the_hidden_one(cli: CliRunner) -> None:
    assert complete(cli, "fracta s") == ["plain,say", "plain,serve", "plain,spawn", "plain,status", "plain,strategy"]
    assert complete(cli, "fracta ho") == ["plain,hooks"]


def test_outside_a_repository_agent_names_complete_to_nothing(tmp_path: Path, cli: CliRunner) -> None:
    assert complete(cli, "fracta kill ", cwd=tmp_path) == []
