"""Commands for the agent lifecycle: up, down, status, spawn, peek, kill."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

# Core modules are imported inside the commands that use them: `fracta spawn` only talks to the
# control plane, and must start fast (its time is part of every agent's start).
from .. import repo
from ..errors import InvalidInput

if TYPE_CHECKING:
    from ..control.daemon import ControlInfo
from . import render


def _repo() -> repo.Repo:
    return repo.find().require_initialized()


def _control(r: repo.Repo) -> ControlInfo:
    """The running control plane, started (and announced once) if needed."""
    from ..control import daemon

    info, started = daemon.up(r)
    if started:
        click.echo(f"started the control plane at {info.url} (pid {info.pid})", err=True)
    return info


@click.command("up")
@click.option("--foreground", is_flag=True, help="Run in this terminal (logs on stderr) instead of in the background.")
@click.option("--log-format", type=click.Choice(["json", "text"]), default="text", show_default=True)
def up_cmd(foreground: bool, log_format: str) -> int:
    """Start the control plane for this repository (one per repository)."""
    r = _repo()
    if foreground:
        from ..control import server

        return server.serve(r, foreground=True, log_format=log_format)
    from ..control import daemon

    info, started = daemon.up(r)
    click.echo(f"{'started' if started else 'already running:'} control plane at {info.url} (pid {info.pid})")
    return 0


@click.command("down")
def down_cmd() -> None:
    """Stop the control plane. Agents keep running; the next start reconciles them."""
    from ..control import daemon

    info = daemon.down(_repo())
    click.echo(f"stopped the control plane (pid {info.pid})" if info else "no control plane is running")


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the versioned JSON shape.")
def status_cmd(as_json: bool) -> int:
    """Is the control plane running, and where?"""
    from ..control import daemon

    info = daemon.read_info(_repo())
    if as_json:
        render.emit_json({"version": 1, "running": info is not None, **(info.__dict__ if info else {})})
    elif info:
        click.echo(f"control plane running at {info.url} (pid {info.pid}, since {info.started_at})")
    else:
        click.echo("control plane not running (fracta up starts it)")
    return 0 if info else 1


@click.command("spawn", context_settings={"ignore_unknown_options": False})
@click.argument("task")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--runtime", "-r", default="command", show_default=True, help="command, or an AI CLI adapter.")
@click.option("--prompt", default=None, help="The task for the agent.")
@click.option(
    "--prompt-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Read the task from a file."
)
@click.option("--base", default=None, help="Start the worktree from this ref (default: the current HEAD).")
@click.option(
    "--workspace",
    type=click.Path(file_okay=False, path_type=Path),
    help="Use this directory instead of a git worktree.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the versioned JSON shape.")
def spawn_cmd(
    task: str,
    args: tuple[str, ...],
    runtime: str,
    prompt: str | None,
    prompt_file: Path | None,
    base: str | None,
    workspace: Path | None,
    as_json: bool,
) -> None:
    """Start agent TASK in its own worktree (feature/TASK). For --runtime command, give the command after --."""
    from ..control import client

    if prompt and prompt_file:
        raise InvalidInput("give either --prompt or --prompt-file, not both")
    text = prompt_file.read_text() if prompt_file else prompt
    r = _repo()
    info = _control(r)
    body = {
        "name": task,
        "runtime": runtime,
        "prompt": text,
        "args": list(args),
        "base": base,
        "workspace": str(workspace.resolve()) if workspace else None,
    }
    data = client.call(r, info, "POST", "/v1/agents", {k: v for k, v in body.items() if v is not None})
    if as_json:
        render.emit_json(data)
        return
    agent = data["agent"]
    where = f"{agent['workspace']}" + (f" on {agent['branch']}" if agent.get("branch") else "")
    click.echo(f"spawned {agent['name']} ({agent['runtime']}, {agent['status']}) in {where}")


@click.command("peek")
@click.argument("name")
@click.option("-n", "count", default=20, show_default=True, type=click.IntRange(0, 10_000), help="How many events.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new output until the agent stops (Ctrl-C to leave).")
@click.option("--json", "as_json", is_flag=True, help="Print the versioned JSON shape.")
def peek_cmd(name: str, count: int, follow: bool, as_json: bool) -> None:
    """Show NAME's recent output without disturbing it."""
    from .. import peek

    r = _repo()
    seen = peek.peek(r, name, n=count)
    while True:
        if as_json:
            render.emit_json(seen.to_dict())
        else:
            for event in seen.events:
                click.echo(render.output_event(event))
        if not follow or (seen.status not in {"queued", "starting", "running"} and not seen.events):
            return
        time.sleep(0.25)
        seen = peek.peek(r, name, since=seen.offset)


@click.command("kill")
@click.argument("name")
@click.option("--force", is_flag=True, help="Remove even with unmerged or uncommitted work (saved under a ref first).")
@click.option("--json", "as_json", is_flag=True, help="Print the versioned JSON shape.")
def kill_cmd(name: str, force: bool, as_json: bool) -> None:
    """Stop NAME's processes, remove its worktree and branch. Refuses to drop unsaved work."""
    from .. import lifecycle, results

    result = lifecycle.kill(_repo(), name, force=force)
    if as_json:
        render.emit_json(results.killed(result))
        return
    click.echo(f"killed {name}" + (" (its processes were stopped)" if result.stopped else ""))
    if result.saved:
        click.echo(f"its work is saved under {result.saved.ref}\nto restore it: {result.saved.restore_hint}")


COMMANDS = [up_cmd, down_cmd, status_cmd, spawn_cmd, peek_cmd, kill_cmd]
