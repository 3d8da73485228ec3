"""The mission queue: queued spawns and wakes, started by a spawner in order as slots free up.
The store keeps it (store/files/missions.py: one file a mission in .fracta/missions/)."""

from __future__ import annotations

import time

from .errors import CorruptRecord
from .records import Mission
from .repo import Repo

__all__ = ["Mission", "drop_agent", "enqueue", "pending", "remove", "wake"]


def enqueue(repo: Repo, name: str, runtime: str, prompt: str | None, args: list[str]) -> Mission:
    mission = Mission(name=name, runtime=runtime, prompt=prompt, args=list(args), queued_ns=time.time_ns())
    return repo.store.missions.enqueue(mission)


def pending(repo: Repo) -> tuple[list[Mission], list[CorruptRecord]]:
    """Queued missions no control plane holds, oldest first."""
    return repo.store.missions.pending()


def remove(repo: Repo, mission: Mission) -> None:
    repo.store.missions.remove(mission)


def drop_agent(repo: Repo, name: str) -> None:
    """Forget any queued mission of agent `name` (it was killed before it started)."""
    repo.store.missions.drop_agent(name)


def wake(repo: Repo) -> None:
    """Tell the spawners to look at the queue again."""
    repo.store.missions.wake()
