"""Parameters several commands share: an agent's NAME, completed by the shell, maybe from $FRACTA_AGENT."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ..errors import InvalidInput

ENV = "FRACTA_AGENT"  # set in every agent's environment (spawn, join): "this shell is agent NAME"


def agent_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Shell completion for an agent's name: the folders under .fracta/agents/, nothing else read."""
    from .. import agents, repo
    from ..errors import FractaError

    try:
        found = agents.all_names(repo.find())
    except FractaError:  # outside a repository: nothing to offer, and nothing to say
        return []
    return [name for name in found if name.startswith(incomplete)]


def recipients(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Shell completion for who a message is to or from: the agents and the chessmaster."""
    names = [*agent_names(ctx, param, incomplete), "chessmaster"]
    return [name for name in names if name.startswith(incomplete)]


def agent_argument(*, own: bool = False, anyone: bool = False) -> Callable[[Any], Any]:
    """The NAME argument. `own`: optional, defaulting to $FRACTA_AGENT (see `need`); `anyone`: the
    chessmaster completes too."""
    return click.argument(
        "name",
        envvar=ENV if own else None,
        required=not own,
        metavar="[NAME]" if own else "NAME",
        shell_complete=recipients if anyone else agent_names,
    )


def need(name: str | None) -> str:
    """NAME as given or taken from $FRACTA_AGENT; an error saying how to give it when neither is there."""
    if name is None:  # an empty NAME given is the core's to refuse, saying why
        raise InvalidInput(
            f"which agent? NAME is missing and ${ENV} is not set",
            f"give the agent's name (fracta list shows them); in an agent's own shell, ${ENV} names it",
        )
    return name
