"""Agent records as the core sees them, whatever the store: validated names, read-modify-write
under the agent's lock, intents kept to one line."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from . import clock, names
from .errors import CorruptRecord, InvalidInput
from .records import FINISHED, LIVE, SCHEMA, Agent, Status
from .repo import Repo

__all__ = ["FINISHED", "LIVE", "SCHEMA", "Agent", "Status"]

MAX_INTENT = 200


def record_path(repo: Repo, name: str) -> Path:
    """Where the files backend keeps the record (tests and the on-disk format's docs use it)."""
    return repo.agent_file(name, "agent.json")


def exists(repo: Repo, name: str) -> bool:
    return repo.store.agents.exists(name)


def load(repo: Repo, name: str) -> Agent:
    names.validate(name)  # a name like ../x must never reach the store
    return repo.store.agents.load(name)


def list_all(repo: Repo) -> tuple[list[Agent], list[CorruptRecord]]:
    """Every agent, sorted by creation; a corrupt record is reported, never fatal for the others."""
    return repo.store.agents.list_all()


def all_names(repo: Repo) -> list[str]:
    """The agents' names as cheaply as the store can (for shell completion)."""
    return repo.store.agents.names()


def create(repo: Repo, agent: Agent) -> Agent:
    """Create the agent's record, inbox and token, all or nothing."""
    names.validate(agent.name)
    import secrets  # here: its import (hmac, random) would weigh on every CLI command that reads agents

    repo.store.agents.create(agent, secrets.token_urlsafe(32))
    return agent


def new(name: str, runtime: str, status: Status, **fields: Any) -> Agent:
    stamp = clock.now()
    return Agent(name=name, runtime=runtime, status=status, created_at=stamp, updated_at=stamp, **fields)


def modify(repo: Repo, name: str, change: Callable[[Agent], Agent | None]) -> Agent:
    """Apply `change` to the freshly read record under its lock; returning None leaves it as is."""
    with holding(repo, name) as current:  # re-read under the lock: another process may have changed it
        changed = change(current)
        if changed is None or changed == current:
            return current
        changed = write(repo, changed)
    touch_activity(repo, name)
    return changed


def holding(repo: Repo, name: str) -> AbstractContextManager[Agent]:
    """Hold the agent's lock and yield its fresh record; change it meanwhile only with `write`.

    What must not interleave with a record change happens under it: the runner starting the
    agent's program, `kill` marking the agent, the spawner moving it out of the queue.
    """
    names.validate(name)  # before the store looks: ../x would put a lock file outside agents/
    return repo.store.agents.holding(name)


def write(repo: Repo, agent: Agent) -> Agent:
    """Store `agent` as its record, stamped now. Only while `holding` its lock."""
    return repo.store.agents.write(agent)


def update(repo: Repo, name: str, **values: Any) -> Agent:
    return modify(repo, name, lambda a: dataclasses.replace(a, **values))


def touch_activity(repo: Repo, name: str) -> None:
    repo.store.agents.touch(name)


def last_activity(repo: Repo, name: str) -> float | None:
    return repo.store.agents.last_activity(name)


def clean_intent(text: str) -> str:
    """One line, bounded: newlines and runs of whitespace fold into single spaces."""
    folded = " ".join(text.split())
    if len(folded) > MAX_INTENT:
        raise InvalidInput(
            f"the intent is {len(folded)} characters long; the limit is {MAX_INTENT}",
            "say what the agent is doing in one short line",
        )
    return folded


def remove(repo: Repo, name: str) -> None:
    """Delete the agent's record, inbox and output. Callers check for unsaved work first."""
    repo.store.agents.remove(name)
