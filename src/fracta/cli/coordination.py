"""Commands for setting up and coordinating: init, join, list, say, inbox, intent, progress."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import agents, liveness, mailbox, progress, repo, results
from ..errors import EXIT_CORRUPT, FractaError, InvalidInput
from . import render
from .params import agent_argument, need, recipients
from .render import examples


def _repo() -> repo.Repo:
    return repo.find().require_initialized()


@click.command(
    "init",
    epilog=examples(
        "fracta init",
        "fracta init --no-wire                 # leave the AI CLIs' config files alone",
        "fracta init --scaffold compose        # also fracta.yaml and deployment/ for Docker Compose",
        "fracta init --scaffold k8s --force    # refresh, overwriting files you edited (backed up)",
    ),
)
@click.option("--no-wire", is_flag=True, help="Leave .mcp.json, .codex/config.toml and opencode.json alone.")
@click.option(
    "--scaffold",
    "mode",
    type=click.Choice(["local", "compose", "k8s"]),
    default=None,
    help="Write fracta.yaml and deployment/ for this mode (docs/modes.md); files you edited are kept.",
)
@click.option("--force", is_flag=True, help="With --scaffold: overwrite files you edited (copied to .fracta/ first).")
def init_cmd(no_wire: bool, mode: str | None, force: bool) -> int:
    """Set up fracta in this git repository: .fracta/ (kept out of git), fracta.yaml, the post-commit hook.

    Also adds `fracta serve` to Claude's .mcp.json, Codex's .codex/config.toml and OpenCode's
    opencode.json. Says which files to commit and what to run next. Safe to run twice.
    With --scaffold, a re-run refreshes the files fracta wrote and keeps those you edited (exit code 5
    when it kept any; --force overwrites them, after copying yours under .fracta/scaffold-backup/).
    """
    from .. import project, scaffold
    from . import hooks  # only here: `fracta list` and the other commands of this module do without

    if force and mode is None:
        raise InvalidInput("--force only applies with --scaffold", "run: fracta init --scaffold MODE --force")
    result = project.init(repo.find(), wire=not no_wire, mode=mode, force=force)
    click.echo(f"{'initialized' if result.created else 'already initialized'} fracta in {result.root}")
    if result.scaffold is not None:
        click.echo("\n".join(render.scaffold_lines(result.scaffold)))
    elif result.wrote_config:
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
    click.echo("\n".join(render.init_next_steps(result)))
    failed = [w.error for w in result.wiring if w.error is not None]
    kept = scaffold.refuse_kept(result.scaffold) if result.scaffold is not None else None
    if kept is not None:
        click.echo(f"error: {kept.message}\nhint: {kept.hint}", err=True)
        failed.append(kept)
    return failed[0].exit_code if failed else 0


@click.command(
    "join",
    epilog=examples(
        'eval "$(fracta join reviewer --intent "review the login PR")"   # then start your AI CLI in this shell',
    ),
)
@click.argument("name")
@click.option("--intent", default="", help="One line: what this agent is about to do.")
@click.option("--json", "as_json", is_flag=True, help="Print the versioned JSON shape.")
def join_cmd(name: str, intent: str, as_json: bool) -> None:
    """Register an agent you run by hand, such as Claude Code in another terminal.

    Prints the environment lines that agent's shell needs (FRACTA_AGENT, FRACTA_HOME, FRACTA_TOKEN).
    """
    from .. import project  # not at import time: `fracta list` does without it (and its config module)

    result = project.join(_repo(), name, intent=intent, workspace=Path.cwd())
    if as_json:
        render.emit_json(results.joined(result.agent, result.env))
        return
    click.echo(f"# agent {name} joined; set these in its environment:", err=True)
    for key, value in result.env.items():
        click.echo(f"export {key}={value}")


@click.command("list", epilog=examples("fracta list", "fracta list --json | jq '.agents[].status'"))
@click.option("--json", "as_json", is_flag=True, help="Print the versioned JSON shape.")
def list_cmd(as_json: bool) -> int:
    """Every agent's status, intent, branch and unread count.

    On a terminal the rows fit its width ($COLUMNS, else the terminal's; the intent is cut short
    with …); piped, they are whole.
    """
    r = _repo()
    found, problems = liveness.checked(r)
    data = results.agent_list(r, found, problems)
    if as_json:
        render.emit_json(data)
    elif not found and not problems:
        click.echo("no agents yet: fracta join NAME, or fracta spawn TASK")
    else:
        click.echo(render.agent_table(data["agents"], width=render.terminal_width(), totals=data["totals"]))
    for problem in problems:
        render.warn(f"{problem.message} ({problem.hint})")
    return EXIT_CORRUPT if problems else 0


@click.command(
    "say",
    epilog=examples(
        'fracta say api "please also add /logout"',
        'fracta say "*" "main moved: merge it"          # every agent but the sender',
        'fracta say chessmaster "done: ready to merge"  # from an agent\'s shell ($FRACTA_AGENT)',
    ),
)
@click.argument("to", shell_complete=recipients)
@click.argument("message")
@click.option(
    "--from",
    "sender",
    default="chessmaster",
    envvar="FRACTA_AGENT",
    show_default=True,
    show_envvar=True,
    shell_complete=recipients,
    help="Who sends it: $FRACTA_AGENT when set (an agent's shell), else the chessmaster.",
)
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
) -> int:
    """Send MESSAGE to agent TO (or * for every agent but the sender)."""
    from .. import messaging

    done = messaging.send(_repo(), sender, to, message, subject=subject, reply_to=reply_to, key=key)
    if as_json:
        render.emit_json(results.sent(done.sent, done.undeliverable))
    else:
        stored = [m.to for m in done.sent if not m.duplicate]
        again = [m.to for m in done.sent if m.duplicate]
        if stored or not again:
            click.echo(f"sent to {', '.join(stored) or 'nobody (no other agents)'}")
        if again:
            click.echo(f"already sent to {', '.join(again)} with this idempotency key: not stored again")
        if done.woken:
            click.echo(f"woke {', '.join(done.woken)} (resuming its session to read the inbox)")
    for never, why in done.undeliverable.items():
        render.warn(f"undeliverable to {never}: {why} (the message is stored; fracta inbox --sent follows it)")
    # Stored is sent, to one agent or to all: nothing was refused, so exit 0 as REST's 201 and
    # MCP's result; who will never read it is warned about above and in the JSON (README: Messages).
    return 0


@click.command(
    "inbox",
    epilog=examples(
        "fracta inbox api          # api's unread messages",
        "fracta inbox chessmaster  # yours",
        "fracta inbox --all        # in an agent's shell: its own ($FRACTA_AGENT), read ones too",
    ),
)
@agent_argument(own=True, anyone=True)
@click.option("--all", "include_read", is_flag=True, help="Also show messages already read.")
@click.option("--sent", "sent", is_flag=True, help="Instead: what became of the messages NAME sent.")
@click.option("--json", "as_json", is_flag=True, help="Print the versioned JSON shape.")
def inbox_cmd(name: str | None, include_read: bool, sent: bool, as_json: bool) -> int:
    """Read NAME's unread messages, marking them read once printed (NAME defaults to $FRACTA_AGENT)."""
    name = need(name)
    r = _repo()
    if sent:
        from .. import delivery

        found = delivery.sent(r, name)
        if as_json:
            render.emit_json(results.sent_states(name, found))
        else:
            click.echo("\n".join(render.message_state(m) for m in found) or "no sent messages in any inbox")
        return 0
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


@click.command(
    "intent",
    epilog=examples(
        'fracta intent api "adding /logout"   # set it',
        "fracta intent api                    # show it",
        "fracta intent                        # in an agent's shell: its own ($FRACTA_AGENT)",
    ),
)
@agent_argument(own=True)
@click.argument("text", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the versioned JSON shape.")
def intent_cmd(name: str | None, text: str | None, as_json: bool) -> None:
    """Show NAME's one-line intent, or set it to TEXT.

    NAME defaults to $FRACTA_AGENT; one argument is always NAME, so setting takes both.
    """
    name = need(name)
    r = _repo()
    from .. import project

    agent = agents.load(r, name) if text is None else project.set_intent(r, name, text)
    if as_json:
        render.emit_json(results.intent(agent))
    else:
        click.echo(agent.intent or "(no intent set)")


@click.command(
    "progress", epilog=examples("fracta progress", "cat .fracta/progress.md   # what agents read: the same file")
)
def progress_cmd() -> None:
    """Print .fracta/progress.md (regenerated first)."""
    r = _repo()
    progress.refresh(r)
    click.echo(r.progress_path.read_text(), nl=False)


COMMANDS = [init_cmd, join_cmd, list_cmd, say_cmd, inbox_cmd, intent_cmd, progress_cmd]
