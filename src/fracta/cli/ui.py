"""`fracta ui`: a one-time link into the web view the control plane serves, opened in a browser."""

from __future__ import annotations

import os
import sys

import click

from .. import repo
from ..errors import ControlPlaneUnavailable
from . import render
from .render import examples


def _can_open_gui() -> bool:
    """A graphical browser can be opened: macOS, Windows, or a display. Without one, Python's
    webbrowser would run a text browser in this very terminal: the link is only printed then."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


@click.command(
    "ui",
    epilog=examples(
        "fracta ui             # prints the link and opens it in your browser",
        "fracta ui --no-open   # only prints it (e.g. over ssh -L, then open it on your machine)",
    ),
)
@click.option("--no-open", is_flag=True, help="Only print the link; do not open a browser.")
@click.option("--json", "as_json", is_flag=True, help="Print the versioned JSON shape.")
def ui_cmd(no_open: bool, as_json: bool) -> None:
    """The live web view of every agent, served by the control plane (loopback only by default).

    Prints a link that works once, for ten minutes: opening it signs this browser in (a session
    cookie) until the control plane stops. Run `fracta up` first; exit code 8 when it is not running.
    """
    from ..control import client, daemon

    r = repo.find().require_initialized()
    info = daemon.read_info(r)
    if info is None:
        raise ControlPlaneUnavailable(
            "the control plane is not running: it serves the web view", "start it with fracta up, then run fracta ui"
        )
    data = client.call(r, info, "POST", "/v1/ui/login", {})
    if as_json:
        render.emit_json(data)
    else:
        click.echo(data["url"])
    if no_open:
        return
    if _can_open_gui():
        import webbrowser

        if webbrowser.open(data["url"], new=2):
            return
    click.echo("no browser to open here: open the link above yourself (it works once)", err=True)


COMMANDS = [ui_cmd]
