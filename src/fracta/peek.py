"""Peeking at an agent's recent output without disturbing it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from . import agents, launchers, runner, runtimes
from .repo import Repo
from .runtimes import stream
from .runtimes.base import OutputEvent, Runtime

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
    path = launchers.create(repo).output(repo, name)
    lines, offset = _read(path, n, since)
    if not lines:  # nothing recorded yet, or an agent run by hand (joined): fracta holds no output
        return Peek(name=name, status=agent.status.value, events=[], offset=offset)
    reader = _Reader(runtimes.get(agent.runtime))
    for raw in lines:
        try:
            record = json.loads(raw)
        except json.JSONDecodeError:
            record = {"line": raw, "stream": "stdout"}
        reader.read(record if isinstance(record, dict) else {"line": raw, "stream": "stdout"})
    found = reader.found
    if since is None:
        found = found[-n:] if n > 0 else []
    return Peek(name=name, status=agent.status.value, events=found, offset=offset)


class _Reader:
    """Turns records into what a reader wants to see: a marker where each run starts, a session id
    once, and a runtime's per-step usage (OpenCode's) summed into one line at the end of its run."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.found: list[OutputEvent] = []
        self.session: Any = None
        self.steps: list[OutputEvent] | None = None  # the run's step usage; None: its start was not read

    def read(self, record: dict[str, Any]) -> None:
        if record.get("stream") == "fracta" and record.get("event") == runner.RUN_EVENT:
            self.found.append(_run_started(record))
            self.steps = []
            return
        for event in self.runtime.parse(record):
            if event.kind == "session":  # some CLIs repeat it on every step: show it when it changes
                if event.data.get("session_id") == self.session:
                    continue
                self.session = event.data.get("session_id")
            if event.kind == "usage" and event.data.get("step"):
                self._step(event)
                continue
            self.found.append(event)

    def _step(self, event: OutputEvent) -> None:
        """Keep a step's usage; at the run's last step, show the run's total if all its steps were read."""
        if self.steps is None:
            return
        self.steps.append(event)
        if event.data.get("last"):
            self.found.append(_total(self.steps, event.ts))
            self.steps = None


def _run_started(record: dict[str, Any]) -> OutputEvent:
    session = record.get("session_id")
    text = f"── woken: resuming session {session} ──" if session else "── run started ──"
    return OutputEvent(kind="run", text=text, ts=record.get("ts"), data={"session_id": session})


def _total(steps: list[OutputEvent], ts: str | None) -> OutputEvent:
    def total(key: str) -> int:
        return sum(int(e.data.get(key) or 0) for e in steps)

    costs = [e.data["cost_usd"] for e in steps if e.data.get("cost_usd") is not None]
    return stream.usage(ts, total("input_tokens"), total("output_tokens"), sum(costs) if costs else None)


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
