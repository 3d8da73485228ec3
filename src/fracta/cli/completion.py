"""`fracta completion SHELL`: the script that makes a shell complete fracta's commands, agents and runtimes."""

from __future__ import annotations

import click

from .render import examples

SHELLS = ("bash", "zsh", "fish")


@click.command(
    "completion",
    epilog=examples(
        'eval "$(fracta completion bash)"         # in ~/.bashrc (bash 4.4 or newer)',
        'eval "$(fracta completion zsh)"          # in ~/.zshrc, after compinit',
        "fracta completion fish > ~/.config/fish/completions/fracta.fish",
    ),
)
@click.argument("shell", type=click.Choice(SHELLS))
def completion_cmd(shell: str) -> None:
    """Print the completion script for SHELL: commands, options, agent names and runtimes complete.

    The script asks fracta itself what to offer (it runs `fracta` with _FRACTA_COMPLETE set), so it
    stays right as fracta changes: load it once from your shell's start-up file.
    """
    from click.shell_completion import get_completion_class

    root = click.get_current_context().find_root()
    complete = get_completion_class(shell)
    if complete is None:  # click knows all three; this guards a click without one of them
        raise click.UsageError(f"click cannot complete {shell} here")
    script = complete(root.command, {}, "fracta", "_FRACTA_COMPLETE").source()
    click.echo(script)


COMMANDS = [completion_cmd]
