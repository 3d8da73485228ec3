"""The mission queue in local mode: one file per queued spawn in .fracta/missions/, FIFO by name."""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import Any

from . import atomic
from .errors import CorruptRecord
from .repo import Repo

SCHEMA = 1
WAKE = "wake"  # touched by runners when an agent exits, so the spawner looks again


@dataclass(frozen=True)
class Mission:
    name: str
    runtime: str
    prompt: str | None
    args: list[str] = field(default_factory=list)
    queued_ns: int = 0

    @property
    def filename(self) -> str:
        return f"{self.queued_ns:019d}-{self.name}.json"

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "name": self.name,
            "runtime": self.runtime,
            "prompt": self.prompt,
            "args": self.args,
            "queued_ns": self.queued_ns,
        }


def enqueue(repo: Repo, name: str, runtime: str, prompt: str | None, args: list[str]) -> Mission:
    mission = Mission(name=name, runtime=runtime, prompt=prompt, args=list(args), queued_ns=time.time_ns())
    atomic.write_json(repo.missions_dir / mission.filename, mission.to_dict(), mode=0o600)
    return mission


def pending(repo: Repo) -> tuple[list[Mission], list[CorruptRecord]]:
    """Queued missions, oldest first."""
    found: list[Mission] = []
    problems: list[CorruptRecord] = []
    try:
        entries = sorted(e for e in os.listdir(repo.missions_dir) if e.endswith(".json") and not e.startswith("."))
    except FileNotFoundError:
        return [], []
    for entry in entries:
        path = repo.missions_dir / entry
        try:
            data = atomic.read_json(path)
            found.append(
                Mission(
                    name=str(data["name"]),
                    runtime=str(data["runtime"]),
                    prompt=data.get("prompt"),
                    args=[str(a) for a in data.get("args", [])],
                    queued_ns=int(data["queued_ns"]),
                )
            )
        except FileNotFoundError:
            continue
        except (KeyError, TypeError, ValueError):
            problems.append(CorruptRecord(path, "missing or invalid fields"))
        except CorruptRecord as exc:
            problems.append(exc)
    return found, problems


def remove(repo: Repo, mission: Mission) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(repo.missions_dir / mission.filename)


def drop_agent(repo: Repo, name: str) -> None:
    """Forget any queued mission of agent `name` (it was killed before it started)."""
    found, _ = pending(repo)
    for mission in found:
        if mission.name == name:
            remove(repo, mission)


def wake(repo: Repo) -> None:
    """Tell the spawner (watching missions/) to look again."""
    atomic.write_bytes(repo.missions_dir / WAKE, str(time.time_ns()).encode(), durable=False)
