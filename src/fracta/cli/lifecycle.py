"""Commands for the agent lifecycle: up, down, status, spawn, peek, kill."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

# Core modules are imported inside the commands that use them: `fracta spawn` only talks to the
# control plane, and must start fast (its time is part of every agent's start).
from .. import repo
from .. import runtimes as runtimes_registry
from ..errors import InvalidInput
from . import render, waiting
from .params import agent_argument, need
from .render import examples

if TYPE_CHECKING:
    from ..control.daemon import ControlInfo

CONFIG_CHANGED = (
    "fracta.yaml changed after the control plane started, and it keeps the settings it read then: "
    "run `fracta down && fracta up` to apply the change (agents keep running)"
)
UP_WAIT = "waiting for the control plane to start (up to 30 s; its output goes to .fracta/logs/control.out)..."


def _repo() -> repo.Repo:
    return repo.find().require_initialized()


def _control(r: repo.Repo) -> ControlInfo:
    """The running control plane, started (and announced once) if needed."""
    from ..control import daemon

    with waiting.notice(UP_WAIT):
        info, started = daemon.up(r)
    if started:
        click.echo(f"started the control plane at {info.url} (pid {info.pid})", err=True)
    elif daemon.config_changed(r):
        render.warn(CONFIG_CHANGED)
    return info


@click.command("up", epilog=examples("fracta up", "fracta up --foreground --log-format json   # logs on stderr"))
@click.option("--foreground", is_flag=True, help="Run in this terminal (logs on stderr) instead of in the background.")
@click.option("--log-format", type=click.Choice(["json", "text"]), default="text", show_default=True)
@click.option(
    "--instance",
    metavar="NAME",
    default=None,
    help="Start another control plane beside the running one, sharing its store (postgres backend only).",
)
def up_cmd(foreground: bool, log_format: str, instance: str | None) -> int:
    """Start the control plane for this repository (one per repository, or several on PostgreSQL)."""
    r = _repo()
    if foreground:
        from ..control import server

        return server.serve(r, foreground=True, log_format=log_format, instance=instance)
    from ..control import daemon

    with waiting.notice(UP_WAIT):
        info, started = daemon.up(r, instance=instance)
    click.echo(f"{'started' if started else 'already running:'} control plane at {info.url} (pid {info.pid})")
    if not started and daemon.config_changed(r):
        render.warn(CONFIG_CHANGED)
    return 0


@click.command("down", epilog=examples("fracta down", "fracta down --instance b   # only that one"))
@click.option("--instance", metavar="NAME", default=None, help="Stop only this control plane (default: every one).")
def down_cmd(instance: str | None) -> None:
    """Stop the control plane. Agents keep running; the next start reconciles them."""
    from ..control import daemon

    info = daemon.down(_repo(), instance=instance)
    click.echo(f"stopped the control plane (pid {info.pid})" if info else "no control plane is running")


@click.command("status", epilog=examples("fracta status", "fracta status --json   # exit code 1 when not running"))
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


@click.command(
    "spawn",
    context_settings={"ignore_unknown_options": False},
    epilog=examples(
        "fracta spawn fix-login -- python scripts/fix_login.py     # any command",
        'fracta spawn login-api --runtime claude --prompt "add POST /login with tests"',
        "fracta spawn docs --runtime codex --prompt-file tasks/docs.md --base v1.2",
    ),
)
@click.argument("task")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option(
    "--runtime",
    "-r",
    type=click.Choice(runtimes_registry.names()),
    default="command",
    show_default=True,
    help="The AI CLI to run, or command for the command given after --.",
)
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
    """Start agent TASK in its own worktree (.fracta/worktrees/TASK, branch feature/TASK).

    For --runtime command, give the command after --. The worktree starts from the last commit
    (HEAD, or --base): uncommitted changes in your checkout are not in it (spawn warns about them).
    """
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
    else:
        agent = data["agent"]
        where = f"{agent['workspace']}" + (f" on {agent['branch']}" if agent.get("branch") else "")
        click.echo(f"spawned {agent['name']} ({agent['runtime']}, {agent['status']}) in {where}")
    if workspace is None:
        _warn_if_dirty(r, base)


def _warn_if_dirty(r: repo.Repo, base: str | None) -> None:
    """Say so when the main checkout has uncommitted changes: the new worktree does not have them."""
    from .. import git

    changed = git.uncommitted(r.root)
    if changed:
        shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        start = f"--base {base}" if base else "the last commit (HEAD)"
        render.warn(
            f"{r.root} has uncommitted changes ({shown}); the agent's worktree starts from {start} "
            "without them: commit them first if the agent needs them"
        )


@click.command(
    "peek",
    epilog=examples(
        "fracta peek login-api            # its last 20 events",
        "fracta peek login-api -n 100 -f  # the last 100, then follow",
        "fracta peek                      # in an agent's shell: its own output ($FRACTA_AGENT)",
    ),
)
@agent_argument(own=True)
@click.option("-n", "count", default=20, show_default=True, type=click.IntRange(0, 10_000), help="How many events.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new output until the agent stops (Ctrl-C to leave).")
@click.option("--json", "as_json", is_flag=True, help="Print the versioned JSON shape.")
def peek_cmd(name: str | None, count: int, follow: bool, as_json: bool) -> None:
    """Show NAME's recent output without disturbing it (NAME defaults to $FRACTA_AGENT)."""
    from .. import peek

    name = need(name)
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


@click.command(
    "kill",
    epilog=examples(
        "fracta kill docs           # refuses while docs holds unmerged or uncommitted work",
        "fracta kill docs --force   # saves that work under refs/fracta/archive/docs/<time> first",
    ),
)
@agent_argument()
@click.option("--force", is_flag=True, help="Remove even with unmerged or uncommitted work (saved under a ref first).")
@click.option("--json", "as_json", is_flag=True, help="Print the versioned JSON shape.")
def kill_cmd(name: str, force: bool, as_json: bool) -> None:
    """Stop NAME's processes, remove its worktree and branch. Refuses to drop unsaved work."""
    from .. import lifecycle, results

    r = _repo()
    with waiting.notice(f"stopping {name}: waiting for its processes to exit, then removing its worktree..."):
        result = lifecycle.kill(r, name, force=force)
    if as_json:
        render.emit_json(results.killed(result))
        return
    click.echo(f"killed {name}" + (" (its processes were stopped)" if result.stopped else ""))
    if result.saved:
        click.echo(result.saved.restore_hint)  # says where the work is saved, and how to bring it back


COMMANDS = [up_cmd, down_cmd, status_cmd, spawn_cmd, peek_cmd, kill_cmd]
