"""Alerts: the few things the chessmaster must not miss, kept in .fracta/alerts.json for progress.md.

Today one kind: an agent's commit outside its own branch (see commits.py). The newest KEEP
alerts are kept, oldest first, and shown under "## Alerts" in progress.md; every alert is also an
event in events.jsonl and a message in the chessmaster's inbox, so nothing depends on this file.
"""

from __future__ import annotations

from pathlib import Path

from . import atomic, clock
from .errors import CorruptRecord
from .repo import Repo

FILE = "alerts.json"
KEEP = 10


def path(repo: Repo) -> Path:
    return repo.state / FILE


def add(repo: Repo, texts: list[str]) -> None:
    """Append alerts (one line each), keeping the newest KEEP."""
    if not texts:
        return
    with atomic.lock(repo.state / "alerts.lock"):
        kept = _read(repo)
        kept += [{"at": clock.now(), "text": " ".join(t.split())} for t in texts]
        atomic.write_json(path(repo), {"schema": 1, "alerts": kept[-KEEP:]})


def lines(repo: Repo) -> list[str]:
    """The kept alerts as `time: text` lines, oldest first (none: an empty list, one failed open)."""
    return [f"{a.get('at', '?')}: {a.get('text', '')}" for a in _read(repo)]


def _read(repo: Repo) -> list[dict[str, str]]:
    try:
        data = atomic.read_json(path(repo))
    except (FileNotFoundError, CorruptRecord):  # a damaged alerts file must never stop progress.md
        return []
    found = data.get("alerts")
    return [a for a in found if isinstance(a, dict)] if isinstance(found, list) else []
