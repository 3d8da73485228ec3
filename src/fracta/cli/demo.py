"""`fracta demo`: see fracta work in a throwaway repository, with nothing to configure."""

from __future__ import annotations

import click

from .. import demo
from .render import examples, style


@click.command(
    "demo", epilog=examples("fracta demo", "fracta demo --keep   # then look around the repository it prints")
)
@click.option("--keep", is_flag=True, help="Keep the temporary repository and print where it is.")
def demo_cmd(keep: bool) -> None:
    """Show agents joining, messaging, setting intents and progress.md, in a temporary repo."""
    for title, shown in demo.run(keep):
        click.echo(style(f"$ {title}", bold=True))
        click.echo(shown.rstrip() + "\n")


COMMANDS = [demo_cmd]
