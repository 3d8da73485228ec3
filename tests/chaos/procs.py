"""The processes of one chaos run, found through psutil: never by a broad name, only by our markers.

Every agent program is started as `env CHAOS_RUN=<run> CHAOS_ID=<incarnation> sh agent.sh ...`,
so it and every child it starts carry both variables in their initial environment. fracta's own
processes (control plane, runners, spares) carry the run's state folder on their command line.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import psutil

from fracta import processes


@dataclass(frozen=True)
class Proc:
    pid: int
    start: int  # as fracta records it (processes.start_time): (pid, start) names one process
    cmdline: str
    environ: dict[str, str]


def start_time(pid: int) -> int | None:
    return processes.start_time(pid)


def alive(pid: int, start: int | None) -> bool:
    """`pid` runs, is not a zombie, and (if `start` is given) is the process we saw before."""
    return processes.alive(pid, start)


def scan(*markers: str) -> list[Proc]:
    """Every live process with one of `markers` in its environment or on its command line."""
    found: list[Proc] = []
    for proc in psutil.process_iter():
        try:
            cmdline = " ".join(proc.cmdline())
            env = proc.environ()
        except psutil.Error:  # gone, or not ours to read
            continue
        if not any(m in cmdline or any(m in f"{k}={v}" for k, v in env.items()) for m in markers):
            continue
        start = start_time(proc.pid)
        if start is None or not alive(proc.pid, start):
            continue
        found.append(Proc(proc.pid, start, cmdline, {k: v for k, v in env.items() if k.startswith("CHAOS_")}))
    return found


def of_incarnation(run: str, ident: str) -> list[Proc]:
    """The live processes of one agent incarnation (its program and everything it started)."""
    return [p for p in scan(run) if p.environ.get("CHAOS_RUN") == run and p.environ.get("CHAOS_ID") == ident]


def sigkill(pid: int, start: int | None) -> bool:
    """SIGKILL exactly this process (checked by start time); True if it was signalled."""
    if not alive(pid, start):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
        return True
    return False


def kill_everything(run: str, state_dir: Path) -> list[Proc]:
    """End every process this run left: agent programs (by marker) and fracta's processes whose
    command line names the run's state folder. Returns what was killed."""
    victims = [p for p in scan(run, str(state_dir)) if p.pid != os.getpid()]
    for proc in victims:
        sigkill(proc.pid, proc.start)
    return victims
