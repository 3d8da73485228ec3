"""The mission queue in local mode: one file per queued spawn in .fracta/missions/, FIFO by name.

A claim renames the file to <file>@<owner> and sets its mtime to the lease's end: a rename is
atomic, so of two claimers only one gets it; one whose lease ran out is pending again. A renewal
moves the mtime on, so the claim's name stays what its claimer holds. Only one control plane
runs per .fracta/ (control.lock), so claims mostly keep its own passes apart.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Iterator
from typing import Any

from ... import atomic, processes
from ...errors import CorruptRecord
from ...records import Mission
from ...repo import Repo

SCHEMA = 1
WAKE = "wake"  # touched by runners when an agent exits, so the spawner looks again


def _to_dict(mission: Mission) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "name": mission.name,
        "runtime": mission.runtime,
        "prompt": mission.prompt,
        "args": mission.args,
        "queued_ns": mission.queued_ns,
    }


def _claim_of(entry: str) -> tuple[str, str] | None:
    """(file, owner) of a claimed entry's name; None for an unclaimed one."""
    file, at, owner = entry.partition("@")
    if not at or not file.endswith(".json") or not owner:
        return None
    return file, owner


def _owner_gone(owner: str) -> bool:
    """A claim's owner named host:pid:start time (a control plane) on this host whose process is
    gone: its claims are void at once. One control plane runs per .fracta/, so a restarted one
    need not wait for the leases of the one it replaces."""
    import socket

    host, pid, started = [*owner.split(":"), "", ""][:3]
    if host != socket.gethostname() or not pid.isdigit() or not started.isdigit():
        return False
    return not processes.alive(int(pid), int(started))


class FileMissions:
    def __init__(self, repo: Repo) -> None:
        self.repo = repo

    def enqueue(self, mission: Mission) -> Mission:
        mission = dataclasses.replace(mission, id=mission.filename)
        atomic.write_json(self.repo.missions_dir / mission.filename, _to_dict(mission), mode=0o600)
        return mission

    def _entries(self) -> list[str]:
        try:
            return sorted(e for e in os.listdir(self.repo.missions_dir) if ".json" in e and not e.startswith("."))
        except FileNotFoundError:
            return []

    def _available(self, now: int) -> Iterator[str]:
        for entry in self._entries():
            if entry.endswith(".json"):
                yield entry
                continue
            claim = _claim_of(entry)
            if claim is None:
                continue
            try:
                until = os.stat(self.repo.missions_dir / entry).st_mtime_ns
            except FileNotFoundError:
                continue
            if until <= now or _owner_gone(claim[1]):
                yield entry

    def pending(self) -> tuple[list[Mission], list[CorruptRecord]]:
        found: list[Mission] = []
        problems: list[CorruptRecord] = []
        for entry in sorted(self._available(time.time_ns()), key=lambda e: e.split("@")[0]):
            try:
                found.append(self._load(entry))
            except FileNotFoundError:
                continue
            except CorruptRecord as exc:
                problems.append(exc)
        return found, problems

    def _load(self, entry: str) -> Mission:
        path = self.repo.missions_dir / entry
        data = atomic.read_json(path)
        try:
            return Mission(
                name=str(data["name"]),
                runtime=str(data["runtime"]),
                prompt=data.get("prompt"),
                args=[str(a) for a in data.get("args", [])],
                queued_ns=int(data["queued_ns"]),
                id=entry,
            )
        except (KeyError, TypeError, ValueError):
            raise CorruptRecord(path, "missing or invalid fields") from None

    def claim(self, owner: str, lease: float, limit: int) -> list[Mission]:
        found, _ = self.pending()  # a corrupt mission file is left where it is (the spawner reports it)
        out: list[Mission] = []
        until = time.time_ns() + int(lease * 1e9)
        for mission in found:
            if len(out) >= limit:
                break
            claimed = f"{mission.id.split('@')[0]}@{owner}"
            if atomic.maildir_move(self.repo.missions_dir, mission.id, claimed):
                self._lease(claimed, until)
                out.append(dataclasses.replace(mission, id=claimed))
        return out

    def _lease(self, entry: str, until: int) -> bool:
        try:
            os.utime(self.repo.missions_dir / entry, ns=(until, until))
        except FileNotFoundError:
            return False
        return True

    def renew(self, owner: str, lease: float) -> int:
        until = time.time_ns() + int(lease * 1e9)
        renewed = 0
        for entry in self._entries():
            claim = _claim_of(entry)
            if claim is not None and claim[1] == owner:
                renewed += self._lease(entry, until)
        return renewed

    def release(self, mission: Mission) -> None:
        original = mission.id.split("@")[0]
        atomic.maildir_move(self.repo.missions_dir, mission.id, original)

    def remove(self, mission: Mission) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.repo.missions_dir / (mission.id or mission.filename))

    def drop_agent(self, name: str) -> None:
        for entry in self._entries():
            if entry.split("@")[0].endswith(f"-{name}.json"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.repo.missions_dir / entry)

    @contextlib.contextmanager
    def scheduling(self) -> Iterator[None]:
        with atomic.lock(self.repo.missions_dir / ".lock"):
            yield

    def wake(self) -> None:
        """Tell the spawner (watching missions/) to look again."""
        atomic.write_bytes(self.repo.missions_dir / WAKE, str(time.time_ns()).encode(), durable=False)
