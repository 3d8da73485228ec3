"""Agent records in local mode: one agent.json per agent, changed only under its lock, read by
anyone at any time; the token beside it (0600), and the mtime of `activity` as last activity."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Iterator
from pathlib import Path

from ... import atomic, clock, names
from ...errors import AgentExists, AgentNotFound, CorruptRecord
from ...records import Agent
from ...repo import Repo

ACTIVITY_RESOLUTION = 0.2  # seconds: a process touches an agent's activity file at most this often


def _not_found(name: str) -> AgentNotFound:
    return AgentNotFound(f"no agent named {name!r}", "run fracta list to see the agents")


class FileAgents:
    def __init__(self, repo: Repo) -> None:
        self.repo = repo

    def _record(self, name: str) -> Path:
        return self.repo.agent_file(name, "agent.json")

    def exists(self, name: str) -> bool:
        return os.path.exists(self._record(name))

    def load(self, name: str) -> Agent:
        path = self._record(name)
        try:
            data = atomic.read_json(path)
        except FileNotFoundError:
            raise _not_found(name) from None
        return Agent.from_dict(data, path)

    def list_all(self) -> tuple[list[Agent], list[CorruptRecord]]:
        found: list[Agent] = []
        problems: list[CorruptRecord] = []
        try:
            entries = os.listdir(self.repo.agents_dir)
        except FileNotFoundError:
            return [], []
        for entry in entries:
            if entry.startswith("."):
                continue
            try:
                found.append(self.load(entry))  # entries are folders, not names from a caller
            except CorruptRecord as exc:
                problems.append(exc)
            except AgentNotFound:
                continue  # a folder being created or removed right now
        found.sort(key=lambda a: (a.created_at, a.name))
        return found, problems

    def names(self) -> list[str]:
        """From the folder listing alone, no record read."""
        try:
            return sorted(entry for entry in os.listdir(self.repo.agents_dir) if not entry.startswith("."))
        except OSError:  # not initialized (or not readable): no names to offer
            return []

    def create(self, agent: Agent, token: str) -> None:
        """The agent's folder, record, inbox and token in one rename: it appears whole or not at all."""
        exists_error = AgentExists(
            f"an agent named {agent.name!r} already exists",
            f"choose another name, or remove it first with: fracta kill {agent.name}",
        )
        folder = self.repo.agent_dir(agent.name)
        if folder.exists():
            raise exists_error

        def populate(tmp: Path) -> None:
            for sub in ("inbox/tmp", "inbox/new", "inbox/cur"):
                (tmp / sub).mkdir(parents=True)
            atomic.write_json(tmp / "agent.json", agent.to_dict())
            atomic.write_text(tmp / "token", token + "\n", mode=0o600)
            atomic.write_bytes(tmp / "activity", b"", durable=False)

        if not atomic.create_dir(folder, populate):
            raise exists_error

    @contextlib.contextmanager
    def holding(self, name: str) -> Iterator[Agent]:
        path = self._record(name)
        if not path.parent.is_dir():
            raise _not_found(name)
        lock = path.parent / "agent.lock"
        with atomic.lock(lock):
            try:
                current = self.load(name)
            except AgentNotFound:
                # Removed just before we took the lock, which then made a folder holding only the
                # lock file: remove it, or the name could never be used again.
                with contextlib.suppress(OSError):
                    if os.listdir(path.parent) == [lock.name]:
                        os.unlink(lock)
                        os.rmdir(path.parent)
                raise
            yield current

    def write(self, agent: Agent) -> Agent:
        changed = dataclasses.replace(agent, updated_at=clock.now())
        atomic.write_json(self._record(agent.name), changed.to_dict())
        return changed

    def remove(self, name: str) -> None:
        folder = self.repo.agent_dir(name)
        if not folder.exists():
            raise _not_found(name)
        atomic.remove_dir(folder)

    def touch(self, name: str) -> None:
        """Last activity is the mtime of agents/<name>/activity: one syscall, no lock.

        Under heavy traffic (a process sending hundreds of messages a second) the file is touched
        at most every ACTIVITY_RESOLUTION seconds per agent: "last activity" is never older than that.
        """
        if name == names.CHESSMASTER:
            return
        now = time.monotonic()
        touched = self.repo.activity_touched
        if now - touched.get(name, -ACTIVITY_RESOLUTION) < ACTIVITY_RESOLUTION:
            return
        atomic.touch(self.repo.agent_file(name, "activity"))
        touched[name] = now

    def last_activity(self, name: str) -> float | None:
        try:
            return self.repo.agent_file(name, "activity").stat().st_mtime
        except FileNotFoundError:
            return None
