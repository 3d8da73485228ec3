"""The `fracta` command: the group, and the one place errors become messages and exit codes."""

from __future__ import annotations

import atexit
import importlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .. import __version__
from ..errors import EXIT_ERROR, EXIT_INTERRUPTED, FractaError
from .render import examples as render_examples
from .render import style

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

# Command name -> the module under fracta.cli defining it. A command's module is imported only
# when that command runs, so `fracta list` never pays for the control plane or the gateway.
COMMAND_MODULES = {
    "init": "coordination",
    "join": "coordination",
    "list": "coordination",
    "watch": "watch",
    "ui": "ui",
    "say": "coordination",
    "inbox": "coordination",
    "intent": "coordination",
    "progress": "coordination",
    "demo": "demo",
    "doctor": "doctor",
    "up": "lifecycle",
    "down": "lifecycle",
    "status": "lifecycle",
    "spawn": "lifecycle",
    "peek": "lifecycle",
    "kill": "lifecycle",
    "merge": "merge",
    "hooks": "hooks",
    "hook": "hooks",
    "serve": "serve",
    "gateway": "gateway",
    "graph": "graph",
    "strategy": "strategy",
    "completion": "completion",
    "logs": "logs",
}


# `fracta --help` lists the commands in these sections, in this order, with these one-line helps:
# listing them must not import every command's module. A command missing here is listed under
# "Other" (its module imported then); tests/test_cli_help.py says which.
SECTIONS: dict[str, dict[str, str]] = {
    "Set-up": {
        "init": "Set up fracta in this repository and wire it into your AI CLIs.",
        "doctor": "Check what fracta needs and say what to fix.",
        "demo": "Watch fracta work in a throwaway repository.",
        "completion": "Print the shell completion script (bash, zsh or fish).",
    },
    "Agents": {
        "spawn": "Start an agent on a task, in its own worktree.",
        "list": "Every agent's status, intent, branch and unread count.",
        "watch": "Every agent's state, tokens and cost, redrawn live.",
        "ui": "Open the live web view of every agent (send, merge, kill).",
        "peek": "Show an agent's recent output without disturbing it.",
        "intent": "Show or set an agent's one-line intent.",
        "progress": "Print .fracta/progress.md, the shared snapshot.",
        "merge": "Merge an agent's branch into the current branch.",
        "kill": "Stop an agent and remove its worktree (refuses to lose work).",
        "join": "Register an agent you run by hand.",
    },
    "Messages": {
        "say": "Send a message to an agent (or * for all).",
        "inbox": "Read an agent's unread messages.",
    },
    "Start and stop": {
        "up": "Start the control plane for this repository.",
        "down": "Stop the control plane (agents keep running).",
        "status": "Is the control plane running, and where?",
        "logs": "Show fracta's logs, or an agent's timeline.",
    },
    "Integration": {
        "serve": "The stdio MCP server your AI CLI launches.",
        "gateway": "Serve the MCP gateway alone (Compose, Kubernetes).",
        "graph": "Query the knowledge graph agents share (query, schema, drop).",
        "strategy": "List, describe and run the shared strategies.",
        "hooks": "Install the git hook that records agent commits.",
    },
}
HIDDEN = {"hook"}  # run by git, not by people


def short_help(name: str) -> str | None:
    """A command's line in `fracta --help`, without importing it."""
    return next((rows[name] for rows in SECTIONS.values() if name in rows), None)


def suggest(name: str, known: list[str]) -> str:
    """The message for an unknown command: the close names, if any."""
    import difflib

    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    if not close:
        return f"No such command {name!r}."
    return f"No such command {name!r}. Did you mean {' or '.join(repr(c) for c in close)}?"


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMAND_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMAND_MODULES.get(cmd_name)
        if module is None:
            return None
        commands: list[click.Command] = importlib.import_module(f"fracta.cli.{module}").COMMANDS
        command = next((c for c in commands if c.name == cmd_name), None)
        if command is not None and command.short_help is None:
            command.short_help = short_help(cmd_name)
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0]
        if name not in COMMAND_MODULES and not name.startswith("-") and not ctx.resilient_parsing:
            raise click.UsageError(suggest(name, self.visible()), ctx)
        return super().resolve_command(ctx, args)

    def visible(self) -> list[str]:
        return [name for name in sorted(COMMAND_MODULES) if name not in HIDDEN]

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections = [(title, list(rows.items())) for title, rows in SECTIONS.items()]
        others = [name for name in self.visible() if short_help(name) is None]
        if others:  # a command added without a section: still listed (its module imported)
            found = [(name, self.get_command(ctx, name)) for name in others]
            sections.append(("Other", [(name, cmd.get_short_help_str()) for name, cmd in found if cmd]))
        for title, rows in sections:
            rows = [(name, text) for name, text in rows if name in COMMAND_MODULES]
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        """Command names (with their one-line help) from the table above: no command is imported."""
        from click.shell_completion import CompletionItem

        items = [CompletionItem(name, help=short_help(name)) for name in self.visible() if name.startswith(incomplete)]
        return items + click.Command.shell_complete(self, ctx, incomplete)


EXAMPLES = render_examples(
    "fracta init                                        # once per repository",
    'fracta spawn login --runtime claude --prompt "add POST /login with tests"',
    "fracta list                                        # what every agent is doing",
    'fracta say login "also cover the lockout case"',
    "fracta merge login                                 # bring its branch back",
)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXAMPLES)
@click.version_option(__version__, prog_name="fracta")
def cli() -> None:
    """fracta: fan work out to many AI coding agents, keep them in touch, merge their work back.

    Run `fracta init` in your git repository, then see `fracta COMMAND --help`.
    """


def _crash_log(exc: BaseException) -> Path:
    import tempfile  # only on a crash: not on every command's start
    import traceback

    with tempfile.NamedTemporaryFile("w", prefix="fracta-crash-", suffix=".log", delete=False) as fh:
        traceback.print_exception(exc, file=fh)
        return Path(fh.name)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; map every failure to a message on stderr and a named exit code."""
    try:
        # NO_COLOR (https://no-color.org): no colour in anything click prints, help included.
        colour = False if os.environ.get("NO_COLOR") else None
        result = cli.main(args=argv, prog_name="fracta", standalone_mode=False, color=colour)
        return result if isinstance(result, int) else 0
    except FractaError as exc:
        click.echo(f"{style('error:', fg='red', bold=True)} {exc.message}", err=True)
        if exc.hint:
            click.echo(f"{style('hint:', bold=True)} {exc.hint}", err=True)
        return exc.exit_code
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except BrokenPipeError:
        return EXIT_ERROR
    except Exception as exc:  # the last resort: a short message, the traceback in a file
        where = _crash_log(exc)
        click.echo(f"{style('error:', fg='red', bold=True)} unexpected {type(exc).__name__}: {exc}", err=True)
        click.echo(f"hint: this is a bug in fracta; the traceback is in {where}", err=True)
        return EXIT_ERROR


def entry() -> None:
    code = main()
    # Leave without tearing the interpreter down (freeing every module and object takes longer
    # than most commands): run the exit hooks and flush the output, as a normal exit would.
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: what could be said was said
            code = code or EXIT_ERROR
    os._exit(code)
