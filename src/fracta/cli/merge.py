"""`fracta merge`: bring an agent's branch back into the chessmaster's current branch."""

from __future__ import annotations

from pathlib import Path

import click

from .. import merge, repo, results
from ..errors import EXIT_CONFLICT, EXIT_REFUSED
from . import render
from .params import agent_argument
from .render import examples


@click.command(
    "merge",
    epilog=examples(
        "fracta merge login-api            # into your current branch",
        "fracta merge login-api --notify   # and tell the other agents to merge it",
        "fracta merge login-api --preview  # what it would do (conflicts, refusals), changing nothing",
    ),
)
@agent_argument()
@click.option("--notify", is_flag=True, help="Tell the other live agents to merge the updated branch.")
@click.option("--preview", is_flag=True, help="Only say what the merge would do (the same checks), changing nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the versioned JSON shape.")
def merge_cmd(name: str, notify: bool, preview: bool, as_json: bool) -> int:
    """Merge agent NAME's branch (feature/NAME) into the current branch; the agent keeps working.

    Refused from inside a linked worktree, with uncommitted changes, or for a directory workspace.
    On a conflict nothing is changed and the conflicting files are listed (exit code 4).
    With --preview, nothing is merged: the exit code says what merging would do (0: it would
    merge, 4: it would conflict, 5: it would be refused).
    """
    r = repo.find().require_initialized()
    if preview:
        return _preview(r, name, as_json)
    result = merge.merge(r, name, notify=notify, cwd=Path.cwd())
    if as_json:
        render.emit_json(results.merged(result))
        return 0
    if result.already_up_to_date:
        click.echo(f"{result.into} already contains {result.branch} (at {result.sha[:10]})")
    else:
        how = "fast-forward" if result.fast_forward else "merge commit"
        click.echo(f"merged {result.branch} into {result.into} at {result.sha[:10]} ({how})")
    if notify:
        click.echo(f"notified: {', '.join(result.notified) or 'nobody (no other live agents)'}")
    return 0


def _preview(r: repo.Repo, name: str, as_json: bool) -> int:
    found = merge.preview(r, name)
    code = {"conflict": EXIT_CONFLICT, "refused": EXIT_REFUSED}.get(found.would, 0)
    if as_json:
        render.emit_json(results.merge_preview(found))
        return code
    said = {
        "merge": f"would merge {found.branch} into {found.into} with a merge commit, without conflicts",
        "fast-forward": f"would fast-forward {found.into} to {found.branch}",
        "nothing": f"{found.into} already contains {found.branch}: nothing to merge",
        "conflict": f"merging {found.branch} into {found.into} would conflict in: {', '.join(found.conflicts)}",
        "refused": f"merge would be refused: {found.refused}",
    }[found.would]
    click.echo(said, err=bool(code))
    if found.hint:
        click.echo(f"hint: {found.hint}", err=True)
    return code


COMMANDS = [merge_cmd]
