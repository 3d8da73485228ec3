"""The `fracta` command: the group, and the one place errors become messages and exit codes."""

from __future__ import annotations

import atexit
import importlib
import os
import sys
from pathlib import Path

import click

from .. import __version__
from ..errors import EXIT_ERROR, EXIT_INTERRUPTED, FractaError

# Command name -> the module under fracta.cli defining it. A command's module is imported only
# when that command runs, so `fracta list` never pays for the control plane or the gateway.
COMMAND_MODULES = {
    "init": "coordination",
    "join": "coordination",
    "list": "coordination",
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
    "logs": "logs",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMAND_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMAND_MODULES.get(cmd_name)
        if module is None:
            return None
        commands: list[click.Command] = importlib.import_module(f"fracta.cli.{module}").COMMANDS
        return next((c for c in commands if c.name == cmd_name), None)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
        result = cli.main(args=argv, prog_name="fracta", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except FractaError as exc:
        click.echo(f"error: {exc.message}", err=True)
        if exc.hint:
            click.echo(f"hint: {exc.hint}", err=True)
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
        click.echo(f"error: unexpected {type(exc).__name__}: {exc}", err=True)
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
