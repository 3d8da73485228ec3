"""`fracta logs`: fracta's own logs (the control plane's by default), or one agent's timeline."""

from __future__ import annotations

import itertools

import click

from .. import repo
from .render import examples


@click.command(
    "logs",
    epilog=examples(
        "fracta logs                # the control plane's last 50 lines",
        "fracta logs api -f         # agent api's timeline, then follow it",
        "fracta logs hooks -n 200 --json",
    ),
)
@click.argument("name", required=False)
@click.option("-n", "count", default=50, show_default=True, type=click.IntRange(0, 1_000_000), help="How many lines.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines, across rotation (Ctrl-C to leave).")
@click.option("--json", "as_json", is_flag=True, help="Print the lines as stored (one JSON object a line).")
def logs_cmd(name: str | None, count: int, follow: bool, as_json: bool) -> None:
    """Show the log of fracta's process NAME (control, gateway, hooks, serve) or agent NAME.

    Without NAME, the control plane's log. An agent's log is its timeline: its runner's lines,
    the control plane's and the hook's lines about it, and its lifecycle events.
    """
    from .. import logview

    r = repo.find().require_initialized()
    shown = logview.view(r, name)
    lines, tails = logview.read(shown, count)
    if name is None:
        found, agents = logview.available(r)
        others = ", ".join(f for f in found if f != "control") or "none yet"
        click.echo(f"(the control plane's log; other logs: {others}; agents: {', '.join(agents) or 'none'})", err=True)
    if not lines and not follow:
        click.echo(f"(nothing logged in {shown.name} yet)", err=True)
    for line in itertools.chain(lines, logview.follow(shown, tails) if follow else ()):
        click.echo(line.text if as_json else logview.render(line))


COMMANDS = [logs_cmd]
