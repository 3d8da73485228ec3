"""`fracta serve`: the stdio MCP server that Claude Code, Codex and OpenCode launch."""

from __future__ import annotations

from pathlib import Path

import click

from .render import examples


@click.command(
    "serve",
    epilog=examples(
        "fracta serve                                      # what your AI CLI runs: fracta init wires it",
        "fracta serve --config ../other-repo/fracta.yaml   # for another repository",
    ),
)
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The fracta.yaml of the repository to serve (default: ./fracta.yaml).",
)
def serve_cmd(config: Path | None) -> int:
    """Speak MCP on stdin/stdout for your AI CLI, bridged to fracta's gateway as the chessmaster.

    Starts the control plane if it is not running, and follows it across restarts.
    """
    from .. import serve

    return serve.run(config)


COMMANDS = [serve_cmd]
