"""The CLI's help teaches: an example on every page, grouped commands, "did you mean", NO_COLOR."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner as ClickRunner
from conftest import CliRunner
from terminal import in_a_terminal

from fracta.cli import main

GROUPED_HELP = """\
Set-up:
  init        Set up fracta in this repository and wire it into your AI CLIs.
  doctor      Check what fracta needs and say what to fix.
  demo        Watch fracta work in a throwaway repository.
  completion  Print the shell completion script (bash, zsh or fish).

Agents:
  spawn     Start an agent on a task, in its own worktree.
  list      Every agent's status, intent, branch and unread count.
  watch     Every agent's state, tokens and cost, redrawn live.
  ui        Open the live web view of every agent (send, merge, kill).
  peek      Show an agent's recent output without disturbing it.
  intent    Show or set an agent's one-line intent.
  progress  Print .fracta/progress.md, the shared snapshot.
  merge     Merge an agent's branch into the current branch.
  kill      Stop an agent and remove its worktree (refuses to lose work).
  join      Register an agent you run by hand.

Messages:
  say    Send a message to an agent (or * for all).
  inbox  Read an agent's unread messages.

Start and stop:
  up      Start the control plane for this repository.
  down    Stop the control plane (agents keep running).
  status  Is the control plane running, and where?
  logs    Show fracta's logs, or an agent's timeline.

Integration:
  serve     The stdio MCP server your AI CLI launches.
  gateway   Serve the MCP gateway alone (Compose, Kubernetes).
  graph     Query the knowledge graph agents share (query, schema, drop).
  strategy  List, describe and run the shared strategies.
  hooks     Install the git hook that records agent commits.
"""


def every_command() -> list[tuple[str, ...]]:
    """Each command's path under `fracta`, subcommands of groups included (hidden ones too)."""
    ctx = click.Context(main.cli)
    paths: list[tuple[str, ...]] = []
    for name in main.COMMAND_MODULES:
        command = main.cli.get_command(ctx, name)
        assert command is not None
        paths.append((name,))
        if isinstance(command, click.Group):
            paths += [(name, sub) for sub in command.commands]
    return paths


@pytest.mark.parametrize("path", every_command(), ids=" ".join)
def test_every_help_page_ends_with_examples_of_that_command(path: tuple[str, ...]) -> None:
    result = ClickRunner().invoke(main.cli, [*path, "--help"], prog_name="fracta")
    assert result.exit_code == 0, result.output
    found = re.search(r"\n  Examples:\n((?:    .+\n?)+)$", result.output)
    assert found, f"no examples at the end of fracta {' '.join(path)} --help:\n{result.output}"
    lines = found.group(1).splitlines()
    assert any(f"fracta {' '.join(path)}" in line for line in lines), lines


def test_examples_keep_their_lines_as_written() -> None:
    result = ClickRunner().invoke(main.cli, ["spawn", "--help"], prog_name="fracta")
    assert result.output.endswith(
        "  Examples:\n"
        "    fracta spawn fix-login -- python scripts/fix_login.py     # any command\n"
        '    fracta spawn login-api --runtime claude --prompt "add POST /login with tests"\n'
        "    fracta spawn docs --runtime codex --prompt-file tasks/docs.md --base v1.2\n"
    )


def test_fracta_help_groups_the_commands_with_whole_one_line_helps(cli: CliRunner) -> None:
    result = cli("--help")
    assert result.returncode == 0, result.stderr
    commands = result.stdout[result.stdout.index("Set-up:") : result.stdout.index("\n  Examples:")]
    assert commands == GROUPED_HELP
    assert "e.g." not in result.stdout and "..." not in commands
    assert "\n  hook " not in commands  # the hidden entry point git runs


def test_every_command_has_a_section_or_is_hidden() -> None:
    placed = {name for rows in main.SECTIONS.values() for name in rows}
    assert placed | main.HIDDEN == set(main.COMMAND_MODULES)
    assert not placed & main.HIDDEN


def test_listing_the_commands_imports_none_of_their_modules(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom fracta.cli import main\nmain.main(['--help'])\n"
        "print(sorted(m for m in sys.modules if m.startswith('fracta.cli.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.splitlines()[-1] == "['fracta.cli.main', 'fracta.cli.render']"


def test_list_imports_no_other_command_module(initialized: object, repo_dir: Path) -> None:
    code = (
        "import sys\nfrom fracta.cli import main\nmain.main(['list'])\n"
        "print(sorted(m for m in sys.modules if m.startswith('fracta.cli.')))"
    )
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo_dir, env=env
    )
    assert out.stdout.splitlines()[-1] == (
        "['fracta.cli.coordination', 'fracta.cli.main', 'fracta.cli.params', 'fracta.cli.render']"
    )


@pytest.mark.parametrize(
    ("typed", "said"),
    [
        ("lsit", "Error: No such command 'lsit'. Did you mean 'list'?"),
        ("spwan", "Error: No such command 'spwan'. Did you mean 'spawn'?"),
        ("stauts", "Error: No such command 'stauts'. Did you mean 'status'?"),
        ("xyzzy", "Error: No such command 'xyzzy'."),
    ],
)
def test_a_mistyped_command_suggests_the_close_ones_and_exits_2(cli: CliRunner, typed: str, said: str) -> None:
    result = cli(typed)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == f"Usage: fracta [OPTIONS] COMMAND [ARGS]...\nTry 'fracta --help' for help.\n\n{said}\n"


@pytest.mark.parametrize(("no_color", "coloured"), [(None, True), ("", True), ("1", False)])
def test_no_color_turns_the_terminals_colours_off(
    initialized: object, repo_dir: Path, no_color: str | None, coloured: bool
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    if no_color is not None:
        env["NO_COLOR"] = no_color
    shown = in_a_terminal(["intent"], repo_dir, env)  # no NAME, no FRACTA_AGENT: an error
    assert "which agent?" in shown
    assert ("\x1b[" in shown) is coloured
    if not coloured:
        assert shown.startswith("error: which agent?")


def test_a_groups_subcommands_have_whole_one_line_helps(cli: CliRunner) -> None:
    result = cli("hooks", "--help")
    assert "\nCommands:\n  install  Install the post-commit hook for every worktree.\n" in result.stdout
