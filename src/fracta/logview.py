"""Reading fracta's logs for `fracta logs`: which exist, their last lines, and following them.

A NAME is one of fracta's processes (`control`, `gateway`, `hooks`, `serve`), any other log in
.fracta/logs/ by its file name without `.log` (a backend MCP server's `mcp-<name>`), or an agent.
An agent's view is its timeline, merged by time: its runner's log (agents/<name>/runner.log: the
runner's start, the agent's exit, the runner's end), the lines of control.log and hooks.log that
name it, and its lifecycle events (`agent.*`) from the event log (events.jsonl: spawned, started,
killed, commits, written by whichever process acted, the CLI included; `agent.exited` is left to
the runner's own line, which also names the signal). A removed agent's timeline is shown while
the event log still names it (its runner.log went with it). On the postgres backend the event
log is the store's (EventTail), not a file.

Following reads each file from where it stopped; when a log is rotated (its name then holds a
new file), the rest of the old file is read first, then the new one from its start.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from . import logs, names
from .errors import AgentNotFound, FractaError, InvalidName
from .repo import Repo
from .store import backend_of
from .store.base import EventStore

PROCESSES = {"control": "control", "gateway": "gateway", "hooks": "hooks", "hook": "hooks", "serve": "serve"}
POLL = 0.2  # seconds between looks at the files when following
# Events a first read of the database's event log goes back: an agent's view keeps its own among
# them, so an agent with nothing in the last this many events shows only its log files' lines.
STORE_BACKLOG = 20000


@dataclass(frozen=True)
class Line:
    text: str  # the line as stored
    data: dict[str, Any] | None  # parsed, when it is a JSON object

    @property
    def time(self) -> str:
        return str(self.data.get("time") or self.data.get("ts") or "") if self.data else ""


@dataclass(frozen=True)
class Source:
    path: Path
    keep: Callable[[Line], bool] | None = None  # None: every line
    events: EventStore | None = None  # the event log kept in a database: read there, not at `path`


@dataclass(frozen=True)
class View:
    name: str
    sources: tuple[Source, ...]

    @property
    def merged(self) -> bool:
        return len(self.sources) > 1


def parse(text: str) -> Line:
    try:
        data = json.loads(text)
    except ValueError:
        return Line(text, None)
    return Line(text, data if isinstance(data, dict) else None)


def available(repo: Repo) -> tuple[list[str], list[str]]:
    """The names `fracta logs` knows: (logs in .fracta/logs/, agents)."""
    found = sorted(p.name.removesuffix(".log") for p in _listing(repo.logs_dir) if p.name.endswith(".log"))
    agents = sorted(p.name for p in _listing(repo.state / "agents") if p.is_dir() and not p.name.startswith("."))
    return found, agents


def view(repo: Repo, name: str | None) -> View:
    """What `fracta logs NAME` shows (the control plane's log without a NAME)."""
    name = name or "control"
    stem = PROCESSES.get(name, name)
    if "/" not in stem and not stem.startswith(".") and (name in PROCESSES or (repo.logs_dir / f"{stem}.log").exists()):
        return View(stem, (Source(repo.logs_dir / f"{stem}.log"),))
    try:
        names.validate(name)
    except InvalidName:
        raise _unknown(repo, name) from None
    files = backend_of(repo) == "files"
    if not repo.agent_dir(name).is_dir() and not (_mentioned(repo.events_path, name) if files else _exists(repo, name)):
        raise _unknown(repo, name)

    def about(line: Line) -> bool:
        return line.data is not None and line.data.get("agent") == name

    def lifecycle(line: Line) -> bool:
        event = str(line.data.get("event")) if line.data else ""
        return about(line) and event.startswith("agent.") and event != "agent.exited"

    sources = [
        Source(repo.agent_dir(name) / "runner.log"),
        Source(repo.logs_dir / "control.log", about),
        Source(repo.logs_dir / "hooks.log", about),
    ]
    sources.append(Source(repo.events_path, lifecycle, events=None if files else repo.store.events))
    return View(name, tuple(sources))


def _exists(repo: Repo, name: str) -> bool:
    from . import agents

    return agents.exists(repo, name)


def _mentioned(events: Path, name: str) -> bool:
    """Whether the event log names agent `name` (its lines are compact JSON with sorted keys)."""
    try:
        return f'"agent":"{name}"'.encode() in events.read_bytes()
    except FileNotFoundError:
        return False


def _unknown(repo: Repo, name: str) -> FractaError:
    found, agents = available(repo)
    known = sorted(set(found) | set(PROCESSES) - {"hook"})
    return AgentNotFound(
        f"no log or agent named {name!r}",
        f"logs: {', '.join(known)}; agents: {', '.join(agents) or 'none'}",
    )


class Tail:
    """A log's complete lines, read as they are appended, across its rotation.

    When the name no longer holds the file being read, that file was rotated: its rest is read,
    then the file that came after it (found by its place among <log>.1 ... <log>.KEEP), and so
    on up to the current one; so lines are not missed even if it rotated more than once between
    two reads (up to KEEP times)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[bytes] | None = None
        self._ino: int | None = None
        self._rest = b""

    def read(self) -> list[str]:
        lines = self._drain()
        for _ in range(logs.KEEP + 2):  # bounded: each step moves to a newer file
            newer = self._newer()
            if newer is None:
                break
            try:
                fh = open(newer, "rb")  # noqa: SIM115 - kept open to follow; closed on moving on
            except FileNotFoundError:
                break  # renamed meanwhile: look again at the next read
            if self._fh is not None:
                self._fh.close()
            self._fh, self._ino, self._rest = fh, os.fstat(fh.fileno()).st_ino, b""
            lines += self._drain()
        return lines

    def _newer(self) -> Path | None:
        """The file to read after the current one (None: the current one is the newest)."""
        try:
            if os.stat(self.path).st_ino == self._ino:
                return None
            current: Path | None = self.path
        except FileNotFoundError:
            current = None  # between a rotation's rename and the next line
        if self._fh is None:
            return current
        rotated = [self.path.with_name(f"{self.path.name}.{n}") for n in range(1, logs.KEEP + 1)]
        for n, older in enumerate(rotated):
            with contextlib.suppress(FileNotFoundError):
                if os.stat(older).st_ino == self._ino:
                    return rotated[n - 1] if n else current
        # Ours was dropped (rotated more than KEEP times since): go on from the oldest left.
        return next((p for p in reversed(rotated) if p.exists()), current)

    def _drain(self) -> list[str]:
        if self._fh is None:
            return []
        data = self._rest + self._fh.read()
        *whole, self._rest = data.split(b"\n")  # a last line still being written waits
        return [raw.decode("utf-8", errors="replace") for raw in whole if raw]

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


class EventTail:
    """The event log kept in the store (postgres), read as Tail reads a file: the first read
    returns the last STORE_BACKLOG events, each later one what was appended since."""

    def __init__(self, events: EventStore) -> None:
        self.events = events
        self._cursor: int | None = None

    def read(self) -> list[str]:
        if self._cursor is None:
            found = self.events.tail(STORE_BACKLOG)
            self._cursor = found[-1].end if found else 0
        else:
            found = list(self.events.read(self._cursor, None))
            if found:
                self._cursor = found[-1].end
        return [json.dumps(e.data, sort_keys=True, separators=(",", ":")) for e in found]

    def close(self) -> None:
        return None


def _tail(source: Source) -> Tail | EventTail:
    return Tail(source.path) if source.events is None else EventTail(source.events)


def _older(source: Source) -> Iterator[list[str]]:
    """The lines of a log's rotated files, newest file first (none for the store's event log)."""
    if source.events is not None:
        return
    path = source.path
    for n in range(1, logs.KEEP + 1):
        try:
            yield path.with_name(f"{path.name}.{n}").read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return


def _kept(source: Source, texts: list[str]) -> list[Line]:
    found = [parse(text) for text in texts if text]
    return [line for line in found if source.keep is None or source.keep(line)]


def read(view: View, n: int) -> tuple[list[Line], list[Tail | EventTail]]:
    """The last `n` lines of `view`, and the tails that carry on right after them."""
    tails = [_tail(source) for source in view.sources]
    picked: list[Line] = []
    for source, tail in zip(view.sources, tails, strict=True):
        lines = _kept(source, tail.read())
        for older in _older(source):
            if len(lines) >= n:
                break
            lines = _kept(source, older) + lines
        picked += lines[-n:] if n else []
    if view.merged:
        picked = _by_time(picked)
    return picked[-n:] if n else [], tails


def _by_time(lines: list[Line]) -> list[Line]:
    """Merged in time order; a line without a time (a raw traceback) stays after the one before it."""
    stamped, last = [], ""
    for index, line in enumerate(lines):
        last = line.time or last
        stamped.append((last, index, line))
    return [line for _, _, line in sorted(stamped, key=lambda item: (item[0], item[1]))]


def follow(view: View, tails: list[Tail | EventTail], poll: float = POLL) -> Iterator[Line]:
    """Lines appended to `view` after `read`, as they come, until the caller stops iterating."""
    try:
        while True:
            for source, tail in zip(view.sources, tails, strict=True):
                yield from _kept(source, tail.read())
            time.sleep(poll)
    finally:
        for tail in tails:
            tail.close()


def render(line: Line) -> str:
    """A line for people: time, level, event, [agent], the sentence, then the other fields."""
    data = line.data
    if data is None or "event" not in data:
        return line.text
    shown = {"time", "ts", "level", "component", "event", "message", "agent", "v", "traceback"}
    extra = " ".join(f"{k}={v}" for k, v in data.items() if k not in shown and v is not None)
    who = f" [{data['agent']}]" if data.get("agent") else ""
    level = str(data.get("level") or "event")  # an event log line has no level
    text = f"{line.time} {level:7} {data['event']}{who}"
    text += f": {data['message']}" if data.get("message") else ""
    text = f"{text} {extra}".rstrip()
    return f"{text}\n{data['traceback'].rstrip()}" if data.get("traceback") else text


def _listing(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except FileNotFoundError:
        return []
