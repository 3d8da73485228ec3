"""Commands for the git hooks: `fracta hooks install`, and the hidden `fracta hook post-commit` it runs."""

from __future__ import annotations

from pathlib import Path

import click

from .. import hooks, repo
from .render import examples


def describe_install(result: hooks.InstallResult) -> list[str]:
    """What an install did, as lines for the terminal (shared with `fracta init`)."""
    said = {
        "installed": "installed the post-commit hook",
        "updated": "updated the post-commit hook",
        "unchanged": "the post-commit hook is already installed",
    }[result.action]
    lines = [f"{said}: {result.hook}"]
    if result.hooks_path:
        lines.append(f"  (core.hooksPath is set to {result.hooks_path}, so it went there)")
    if result.chained:
        lines.append(f"  your earlier post-commit hook still runs first: {result.chained}")
    return lines


@click.group("hooks", epilog=examples("fracta hooks install"))
def hooks_group() -> None:
    """The git hook that tells fracta about each agent commit."""


@hooks_group.command(
    "install", short_help="Install the post-commit hook for every worktree.", epilog=examples("fracta hooks install")
)
def install_cmd() -> None:
    """Install the post-commit hook for every worktree (fracta init does this too). Safe to run twice.

    An existing post-commit hook is kept and run first. A commit in an agent's worktree then
    updates its last commit in progress.md and messages the chessmaster and subscribed agents.
    """
    result = hooks.install(repo.find())
    click.echo("\n".join(describe_install(result)))


@click.group("hook", hidden=True, epilog=examples("fracta hook post-commit"))
def hook_group() -> None:
    """Entry points for the hooks fracta installs; git runs these, people need not."""


@hook_group.command(
    "post-commit", epilog=examples("fracta hook post-commit --timeout 2   # what the installed hook runs")
)
@click.option("--timeout", type=float, default=hooks.DEFAULT_TIMEOUT, show_default=True, help="Give up after this.")
def post_commit_cmd(timeout: float) -> None:
    """Record the commit just made; a problem is logged and reported in one line, never an exit code."""
    problem = hooks.handle_post_commit(Path.cwd(), timeout=timeout)
    if problem:
        click.echo(problem, err=True)


COMMANDS = [hooks_group, hook_group]
