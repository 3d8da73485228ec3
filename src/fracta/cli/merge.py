"""`fracta merge`: bring an agent's branch back into the chessmaster's current branch."""

from __future__ import annotations

from pathlib import Path

import click

from .. import merge, repo, results
from . import render
from .params import agent_argument
from .render import examples


@click.command(
    "merge",
    epilog=examples(
        "fracta merge login-api            # into your current branch",
        "fracta merge login-api --notify   # and tell the other agents to merge it",
    ),
)
@agent_argument()
@click.option("--notify", is_flag=True, help="Tell the other live agents to merge the updated branch.")
@click.option("--json", "as_json", is_flag=True, help="Print the versioned JSON shape.")
def merge_cmd(name: str, notify: bool, as_json: bool) -> None:
    """Merge agent NAME's branch (feature/NAME) into the current branch; the agent keeps working.

    Refused from inside a linked worktree, with uncommitted changes, or for a directory workspace.
    On a conflict nothing is changed and the conflicting files are listed (exit code 4).
    """
    result = merge.merge(repo.find().require_initialized(), name, notify=notify, cwd=Path.cwd())
    if as_json:
        render.emit_json(results.merged(result))
        return
    if result.already_up_to_date:
        click.echo(f"{result.into} already contains {result.branch} (at {result.sha[:10]})")
    else:
        how = "fast-forward" if result.fast_forward else "merge commit"
        click.echo(f"merged {result.branch} into {result.into} at {result.sha[:10]} ({how})")
    if notify:
        click.echo(f"notified: {', '.join(result.notified) or 'nobody (no other live agents)'}")


COMMANDS = [merge_cmd]
