"""Commands for setting up and coordinating: init, join, list, say, inbox, intent, progress."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import agents, liveness, mailbox, progress, repo, results
from ..errors import EXIT_CORRUPT, FractaError
from . import render


def _repo() -> repo.Repo:
    return repo.find().require_initialized()


@click.command("init")
@click.option("--no-wire", is_flag=True, help="Leave .mcp.json, .codex/config.toml and opencode.json alone.")
def init_cmd(no_wire: bool) -> int:
    """Set up fracta in this git repository (.fracta/, fracta.yaml, git exclude), and add `fracta serve`
    to Claude's .mcp.json, Codex's .codex/config.toml and OpenCode's opencode.json. Safe to run twice."""
    from .. import project
    from . import hooks  # only here: `fracta list` and the other commands of this module do without

    result = project.init(repo.find(), wire=not no_wire)
    click.echo(f"{'initialized' if result.created else 'already initialized'} fracta in {result.root}")
    if result.wrote_config:
        click.echo(f"wrote {result.root / 'fracta.yaml'} (commented defaults)")
    if isinstance(result.hook, FractaError):
        render.warn(f"post-commit hook not installed: {result.hook.message} ({result.hook.hint})")
    elif result.hook is not None:
        click.echo("\n".join(hooks.describe_install(result.hook)))
    for wired in result.wiring:
        if wired.error is None:
            click.echo(wired.describe())
        else:
            click.echo(f"error: {wired.describe()}\nhint: {wired.error.hint}", err=True)
    failed = [w.error for w in result.wiring if w.error is not None]
    return failed[0].exit_code if failed else 0


@click.command("join")
@click.argument("name")
@click.option("--intent", default="", help="One line: what this agent is about to do.")
@click.option("--json", "as_json", is_flag=True, help="Print the versioned JSON shape.")
def join_cmd(name: str, intent: str, as_json: bool) -> None:
    """Register an agent you run by hand (e.g. Claude Code in another terminal).

    Prints the environment lines that agent's shell needs.
    """
    from .. import project  # not at import time: `fracta list` does without it (and its config module)

    result = project.join(_repo(), name, intent=intent, workspace=Path.cwd())
    if as_json:
        render.emit_json(results.joined(result.agent, result.env))
        return
    click.echo(f"# agent {name} joined; set these in its environment:", err=True)
    for key, value in result.env.items():
        click.echo(f"export {key}={value}")


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the versioned JSON shape.")
def list_cmd(as_json: bool) -> int:
    """Every agent's status, intent, branch and unread count."""
    r = _repo()
    found, problems = liveness.checked(r)
    data = results.agent_list(r, found, problems)
    if as_json:
        render.emit_json(data)
    elif not found and not problems:
        click.echo("no agents yet: fracta join NAME, or fracta spawn TASK")
    else:
        click.echo(render.agent_table(data["agents"]))
    for problem in problems:
        render.warn(f"{problem.message} ({problem.hint})")
    return EXIT_CORRUPT if problems else 0


@click.command("say")
@click.argument("to")
@click.argument("message")
@click.option("--from", "sender", default="chessmaster", show_default=True, help="Who sends it.")
@click.option("--subject", default=None, help="Optional one-line subject.")
@click.option("--reply-to", default=None, help="Optional id of the message this answers.")
@click.option(
    "--idempotency-key",
    "key",
    default=None,
    help="A string unique to this message: running the command again with it stores the message once.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the versioned JSON shape.")
def say_cmd(
    to: str, message: str, sender: str, subject: str | None, reply_to: str | None, key: str | None, as_json: bool
) -> None:
    """Send MESSAGE to agent TO (or * for every agent but the sender)."""
    from .. import messaging

    done = messaging.send(_repo(), sender, to, message, subject=subject, reply_to=reply_to, key=key)
    if as_json:
        render.emit_json(results.sent(done.sent))
    else:
        stored = [m.to for m in done.sent if not m.duplicate]
        again = [m.to for m in done.sent if m.duplicate]
        if stored or not again:
            click.echo(f"sent to {', '.join(stored) or 'nobody (no other agents)'}")
        if again:
            click.echo(f"already sent to {', '.join(again)} with this idempotency key: not stored again")
        if done.woken:
            click.echo(f"woke {', '.join(done.woken)} (resuming its session to read the inbox)")


@click.command("inbox")
@click.argument("name")
@click.option("--all", "include_read", is_flag=True, help="Also show messages already read.")
@click.option("--json", "as_json", is_flag=True, help="Print the versioned JSON shape.")
def inbox_cmd(name: str, include_read: bool, as_json: bool) -> int:
    """Read NAME's unread messages (marking them read once they are printed)."""
    r = _repo()
    box = mailbox.read(r, name, include_read=include_read)
    if as_json:
        render.emit_json(results.inbox(name, box))
    elif not box.messages:
        click.echo("no unread messages" if not include_read else "no messages")
    else:
        click.echo("\n".join(render.message(m) for m in box.messages))
    sys.stdout.flush()  # printed: only now are they read (a failed write leaves them to be handed out again)
    mailbox.acknowledge(r, name, box.receipt)
    for problem in box.problems:
        render.warn(f"{problem.message} ({problem.hint})")
    return EXIT_CORRUPT if box.problems else 0


@click.command("intent")
@click.argument("name")
@click.argument("text", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the versioned JSON shape.")
def intent_cmd(name: str, text: str | None, as_json: bool) -> None:
    """Show NAME's one-line intent, or set it to TEXT."""
    r = _repo()
    from .. import project

    agent = agents.load(r, name) if text is None else project.set_intent(r, name, text)
    if as_json:
        render.emit_json(results.intent(agent))
    else:
        click.echo(agent.intent or "(no intent set)")


@click.command("progress")
def progress_cmd() -> None:
    """Print .fracta/progress.md (regenerated first)."""
    r = _repo()
    progress.refresh(r)
    click.echo(r.progress_path.read_text(), nl=False)


COMMANDS = [init_cmd, join_cmd, list_cmd, say_cmd, inbox_cmd, intent_cmd, progress_cmd]
