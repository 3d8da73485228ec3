"""`fracta watch`: `fracta list`'s states and figures, redrawn as the event stream says things change."""

from __future__ import annotations

import os
import sys
import time

import click

from .. import clock, liveness, repo, results
from . import render
from .render import examples

REFRESH = 2.0  # seconds: redrawn at least this often, for what changes with time alone (stalled, ages)
SETTLE = 0.2  # seconds: a burst of events is drawn once, this long after its first event
CLEAR = "\x1b[H\x1b[2J"


def frame(r: repo.Repo, width: int | None, height: int | None, source: str) -> str:
    """One view of the fleet: a heading, the agents (as `fracta list`) and the fleet's totals,
    every line cut to `width` and the rows to `height` (the totals line always shown)."""
    found, problems = liveness.checked(r)
    data = results.agent_list(r, found, problems)
    head = f"fracta watch · {clock.now()[11:19]} · {source}"
    if found:
        body = render.agent_table(data["agents"], width, data["totals"]).splitlines()
    else:
        body = ["no agents yet: fracta spawn TASK, or fracta join NAME"]
    body += [f"! {p['path']}: {p['error']}" for p in data["problems"]]
    lines = [head, *body]
    if height and len(lines) > height:
        keep = max(height - 2, 1)
        lines = [*lines[:keep], f"… {len(lines) - keep - 1} more lines (a taller terminal shows them)", lines[-1]]
    if width:
        lines = [line if len(line) <= width else line[: width - 1] + render.ELLIPSIS for line in lines]
    return "\n".join(lines)


def _size() -> tuple[int | None, int | None]:
    width = render.terminal_width()
    if width is None:
        return None, None
    try:
        return width, os.get_terminal_size(sys.stdout.fileno()).lines
    except OSError:
        return width, None


@click.command(
    "watch",
    epilog=examples(
        "fracta watch          # redrawn live until Ctrl-C",
        "fracta watch --once   # one view, then exit (for scripts)",
    ),
)
@click.option("--once", is_flag=True, help="Print one view and exit.")
def watch_cmd(once: bool) -> int:
    """Every agent's state, tokens and cost, redrawn live from the control plane's event stream.

    Fitted to the terminal. With no control plane running, it reads the store every second
    instead (and says so in its heading). Ctrl-C ends it (exit code 0).
    """
    from .. import watching

    r = repo.find().require_initialized()
    if once:
        click.echo(frame(r, *_size(), "once"))
        return 0
    feed = watching.Feed(r).start()
    tty = sys.stdout.isatty()
    try:
        while True:
            feed.take()
            text = frame(r, *_size(), feed.source)
            click.echo(CLEAR + text if tty else text + "\n", nl=not tty)
            if feed.wait(REFRESH):
                time.sleep(SETTLE)  # let the rest of a burst land: one redraw for all of it
    except KeyboardInterrupt:
        return 0
    finally:
        feed.close()


COMMANDS = [watch_cmd]
