"""Peeking at an agent's recent output without disturbing it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from . import agents, runner, runtimes
from .repo import Repo
from .runtimes.base import OutputEvent

SCHEMA = 1


@dataclass(frozen=True)
class Peek:
    name: str
    status: str
    events: list[OutputEvent]
    offset: int  # byte offset to continue from (for --follow)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": SCHEMA,
            "agent": self.name,
            "status": self.status,
            "offset": self.offset,
            "events": [{"kind": e.kind, "text": e.text, "ts": e.ts, "data": e.data} for e in self.events],
        }


def peek(repo: Repo, name: str, n: int = 20, since: int | None = None) -> Peek:
    """The last `n` readable events (or everything after byte offset `since`)."""
    agent = agents.load(repo, name)
    path = repo.agent_dir(name) / runner.OUTPUT_FILE
    lines, offset = _read(path, n, since)
    if not lines:  # nothing recorded yet, or an agent run by hand (joined): fracta holds no output
        return Peek(name=name, status=agent.status.value, events=[], offset=offset)
    runtime = runtimes.get(agent.runtime)
    found: list[OutputEvent] = []
    session = None
    for raw in lines:
        try:
            record = json.loads(raw)
        except json.JSONDecodeError:
            record = {"line": raw, "stream": "stdout"}
        for event in runtime.parse(record):
            if event.kind == "session":  # some CLIs repeat it on every step: show it when it changes
                if event.data.get("session_id") == session:
                    continue
                session = event.data.get("session_id")
            found.append(event)
    if since is None:
        found = found[-n:] if n > 0 else []
    return Peek(name=name, status=agent.status.value, events=found, offset=offset)


def _read(path: os.PathLike[str], n: int, since: int | None) -> tuple[list[str], int]:
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return [], 0
    with fh:
        size = fh.seek(0, os.SEEK_END)
        if since is not None:
            start = min(since, size)
        else:
            # Read backwards in chunks until we have n complete lines.
            start, chunk = size, 64 * 1024
            while start > 0:
                start = max(0, start - chunk)
                fh.seek(start)
                if fh.read(size - start).count(b"\n") > n:
                    break
        fh.seek(start)
        data = fh.read(size - start)
    if since is None and start > 0:
        data = data[data.index(b"\n") + 1 :] if b"\n" in data else b""
        start = size - len(data)
    complete = data[: data.rfind(b"\n") + 1]  # a line still being written waits for the next read
    lines = [line for line in complete.decode("utf-8", errors="replace").split("\n") if line]
    return lines, start + len(complete)
