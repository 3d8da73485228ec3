"""The event log: what happened, one record an event, for `fracta logs`, the event stream and tests.
The store keeps it (store/files/events.py: .fracta/events.jsonl)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from . import clock
from .records import Event
from .repo import Repo

__all__ = ["Event", "read", "record", "tail"]

SCHEMA = 1


def record(repo: Repo, event: str, agent: str | None = None, **data: Any) -> None:
    """Append one event. Never carries secrets: callers pass names and ids, not tokens or bodies."""
    repo.store.events.append({"v": SCHEMA, "ts": clock.now(), "event": event, "agent": agent, **data})


def read(repo: Repo, since: int = 0, limit: int | None = None) -> Iterator[Event]:
    """Events from cursor `since` (0: the first); each Event.end is the cursor of the next."""
    return repo.store.events.read(since, limit)


def tail(repo: Repo, n: int) -> list[Event]:
    """The last `n` events."""
    return repo.store.events.tail(n)
