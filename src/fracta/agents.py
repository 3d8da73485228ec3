"""Agent records: one agent.json per agent, changed only under its lock, read by anyone at any time."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from . import atomic, clock, names
from .errors import AgentExists, AgentNotFound, CorruptRecord, InvalidInput
from .records import FINISHED, LIVE, SCHEMA, Agent, Status
from .repo import Repo

__all__ = ["FINISHED", "LIVE", "SCHEMA", "Agent", "Status"]

MAX_INTENT = 200


def record_path(repo: Repo, name: str) -> Path:
    return repo.agent_file(name, "agent.json")


def activity_path(repo: Repo, name: str) -> Path:
    return repo.agent_file(name, "activity")


def exists(repo: Repo, name: str) -> bool:
    return os.path.exists(record_path(repo, name))


def load(repo: Repo, name: str) -> Agent:
    names.validate(name)  # a name like ../x must never reach the filesystem
    return _load(repo, name)


def _load(repo: Repo, name: str) -> Agent:
    path = record_path(repo, name)
    try:
        data = atomic.read_json(path)
    except FileNotFoundError:
        raise AgentNotFound(f"no agent named {name!r}", "run fracta list to see the agents") from None
    return Agent.from_dict(data, path)


def list_all(repo: Repo) -> tuple[list[Agent], list[CorruptRecord]]:
    """Every agent, sorted by creation; a corrupt record is reported, never fatal for the others."""
    found: list[Agent] = []
    problems: list[CorruptRecord] = []
    try:
        entries = os.listdir(repo.agents_dir)
    except FileNotFoundError:
        return [], []
    for entry in entries:
        if entry.startswith("."):
            continue
        try:
            found.append(_load(repo, entry))  # entries are folders, not names from a caller
        except CorruptRecord as exc:
            problems.append(exc)
        except AgentNotFound:
            continue  # a folder being created or removed right now
    found.sort(key=lambda a: (a.created_at, a.name))
    return found, problems


def all_names(repo: Repo) -> list[str]:
    """The agents' names from the folder listing alone, no record read (for shell completion)."""
    try:
        return sorted(entry for entry in os.listdir(repo.agents_dir) if not entry.startswith("."))
    except OSError:  # not initialized (or not readable): no names to offer
        return []


def create(repo: Repo, agent: Agent) -> Agent:
    """Create the agent's folder, record, inbox and token in one rename: it appears whole or not at all."""
    names.validate(agent.name)
    exists_error = AgentExists(
        f"an agent named {agent.name!r} already exists",
        f"choose another name, or remove it first with: fracta kill {agent.name}",
    )
    if repo.agent_dir(agent.name).exists():
        raise exists_error

    import secrets  # here: its import (hmac, random) would weigh on every CLI command that reads agents

    def populate(folder: Path) -> None:
        for sub in ("inbox/tmp", "inbox/new", "inbox/cur"):
            (folder / sub).mkdir(parents=True)
        atomic.write_json(folder / "agent.json", agent.to_dict())
        atomic.write_text(folder / "token", secrets.token_urlsafe(32) + "\n", mode=0o600)
        atomic.write_bytes(folder / "activity", b"", durable=False)

    if not atomic.create_dir(repo.agent_dir(agent.name), populate):
        raise exists_error
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


@contextlib.contextmanager
def holding(repo: Repo, name: str) -> Iterator[Agent]:
    """Hold the agent's lock and yield its fresh record; change it meanwhile only with `write`.

    What must not interleave with a record change happens under it: the runner starting the
    agent's program, `kill` marking the agent, the spawner moving it out of the queue.
    """
    names.validate(name)  # before the lock file below is created: ../x would put it outside agents/
    path = record_path(repo, name)
    if not path.parent.is_dir():
        raise AgentNotFound(f"no agent named {name!r}", "run fracta list to see the agents")
    lock = path.parent / "agent.lock"
    with atomic.lock(lock):
        try:
            current = load(repo, name)
        except AgentNotFound:
            # Removed just before we took the lock, which then made a folder holding only the
            # lock file: remove it, or the name could never be used again.
            with contextlib.suppress(OSError):
                if os.listdir(path.parent) == [lock.name]:
                    os.unlink(lock)
                    os.rmdir(path.parent)
            raise
        yield current


def write(repo: Repo, agent: Agent) -> Agent:
    """Store `agent` as its record, stamped now. Only while `holding` its lock."""
    changed = dataclasses.replace(agent, updated_at=clock.now())
    atomic.write_json(record_path(repo, agent.name), changed.to_dict())
    return changed


def update(repo: Repo, name: str, **values: Any) -> Agent:
    return modify(repo, name, lambda a: dataclasses.replace(a, **values))


ACTIVITY_RESOLUTION = 0.2  # seconds: a process touches an agent's activity file at most this often


def touch_activity(repo: Repo, name: str) -> None:
    """Last activity is the mtime of agents/<name>/activity: one syscall, no lock.

    Under heavy traffic (a process sending hundreds of messages a second) the file is touched
    at most every ACTIVITY_RESOLUTION seconds per agent: "last activity" is never older than that.
    """
    if name == names.CHESSMASTER:
        return
    now = time.monotonic()
    touched = repo.activity_touched
    if now - touched.get(name, -ACTIVITY_RESOLUTION) < ACTIVITY_RESOLUTION:
        return
    atomic.touch(activity_path(repo, name))
    touched[name] = now


def last_activity(repo: Repo, name: str) -> float | None:
    try:
        return activity_path(repo, name).stat().st_mtime
    except FileNotFoundError:
        return None


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
    """Delete the agent's folder (its record, inbox and output). Callers check for unsaved work first."""
    folder = repo.agent_dir(name)
    if not folder.exists():
        raise AgentNotFound(f"no agent named {name!r}", "run fracta list to see the agents")
    atomic.remove_dir(folder)
