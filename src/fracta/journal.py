"""The spawn journal: what a spawn in flight is about to create, so a crash never orphans it.

A spawn holds .fracta/spawns/<name>.lock from its first check to its last write. Once it has
found the worktree path and the branch free (under the workspaces lock), and before it creates
either, it writes .fracta/spawns/<name>.json naming them; it removes that file once the agent
is whole (record and mission written) or once it has rolled everything back. A journal found
while its lock is free therefore names exactly the pieces an interrupted spawn may have left,
and nothing the user made: fracta adopts those (see adopt.py). A `feature/*` branch that no
journal names and no worktree under .fracta/worktrees/ has checked out is the user's, and
fracta leaves it alone.

The lock files stay (empty files, one per task name ever spawned): removing a lock file while
another process waits on it would let two holders in.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from . import atomic, clock
from .errors import CorruptRecord, LockTimeout
from .repo import Repo

SCHEMA = 1
SUFFIX = ".json"
# Test-only: TEST_FRACTA_SPAWN_PAUSE=<point>:<file> makes a spawn reaching <point> create <file>,
# then wait until <file>.go exists (or the process is killed). tests/test_spawn_transaction.py
# uses it to kill the control plane at each step of a spawn. Not FRACTA_*: `fracta up` does not
# pass those on to the control plane (environment.for_control_plane).
PAUSE_ENV = "TEST_FRACTA_SPAWN_PAUSE"


@dataclass(frozen=True)
class Entry:
    """What an in-flight spawn is about to create."""

    name: str
    runtime: str
    workspace_kind: str
    path: str
    branch: str | None
    base: str | None
    command: list[str]
    started_at: str
    pid: int


def folder(repo: Repo) -> Path:
    return repo.state / "spawns"


def path_of(repo: Repo, name: str) -> Path:
    return folder(repo) / f"{name}{SUFFIX}"


@contextlib.contextmanager
def holding(repo: Repo, name: str) -> Iterator[None]:
    """Hold task `name`'s spawn lock (waiting, as long as a lock may take, for another spawn of it)."""
    with atomic.lock(folder(repo) / f"{name}.lock"):
        yield


def try_holding(repo: Repo, name: str) -> contextlib.ExitStack[bool | None] | None:
    """Hold `name`'s spawn lock if it is free; None while a spawn of that name is in flight."""
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(atomic.lock(folder(repo) / f"{name}.lock", timeout=0))
    except LockTimeout:
        stack.close()
        return None
    return stack


def write(repo: Repo, entry: Entry) -> None:
    """Record what the spawn is about to create, before it creates any of it.

    Not fsync'd: it guards against a process that dies (the page cache survives), and the git
    pieces it announces are not fsync'd by git either.
    """
    data = {"schema": SCHEMA, **asdict(entry)}
    try:
        atomic.write_json(path_of(repo, entry.name), data, durable=False, mode=0o600)
    except FileNotFoundError:  # no spawn has taken a lock here yet (the lock makes the folder)
        atomic.ensure_dirs(folder(repo))
        atomic.write_json(path_of(repo, entry.name), data, durable=False, mode=0o600)


def entry(
    name: str, runtime: str, kind: str, path: Path, branch: str | None, base: str | None, command: list[str]
) -> Entry:
    """A journal entry for a spawn made by this process, now."""
    return Entry(name, runtime, kind, str(path), branch, base, list(command), clock.now(), os.getpid())


def read(repo: Repo, name: str) -> Entry | None:
    """The journal of spawn `name`, or None; CorruptRecord when it cannot be read."""
    target = path_of(repo, name)
    try:
        data = atomic.read_json(target)
    except FileNotFoundError:
        return None
    try:
        return Entry(
            name=str(data["name"]),
            runtime=str(data["runtime"]),
            workspace_kind=str(data["workspace_kind"]),
            path=str(data["path"]),
            branch=data.get("branch"),
            base=data.get("base"),
            command=[str(a) for a in data.get("command", [])],
            started_at=str(data["started_at"]),
            pid=int(data["pid"]),
        )
    except (KeyError, TypeError, ValueError):
        raise CorruptRecord(target, "missing or invalid fields") from None


def names(repo: Repo) -> list[str]:
    """The task names that have a journal (spawns in flight, or interrupted)."""
    try:
        entries = os.listdir(folder(repo))
    except FileNotFoundError:
        return []
    return sorted(e[: -len(SUFFIX)] for e in entries if e.endswith(SUFFIX) and not e.startswith("."))


def remove(repo: Repo, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path_of(repo, name))


def checkpoint(point: str) -> None:
    """Test-only pause (see PAUSE_ENV); one dict lookup when unused."""
    wanted = os.environ.get(PAUSE_ENV)
    if not wanted:
        return
    name, _, signal_file = wanted.partition(":")
    if name != point or not signal_file:
        return
    Path(signal_file).write_text(f"{os.getpid()}\n")
    go = Path(signal_file + ".go")
    while not go.exists():
        time.sleep(0.01)
