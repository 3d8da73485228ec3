"""The `fracta` command: the group, and the one place errors become messages and exit codes."""

from __future__ import annotations

import sys
import tempfile
import traceback
from pathlib import Path

import click

from .. import __version__
from ..errors import EXIT_ERROR, EXIT_INTERRUPTED, FractaError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fracta")
def cli() -> None:
    """fracta: fan work out to many AI coding agents, keep them in touch, merge their work back.

    Run `fracta init` in your git repository, then see `fracta COMMAND --help`.
    """


def _register() -> None:
    from . import coordination, demo, gateway, hooks, lifecycle, merge, serve

    for module in (coordination, demo, lifecycle, hooks, merge, serve, gateway):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def _crash_log(exc: BaseException) -> Path:
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
    sys.exit(main())
