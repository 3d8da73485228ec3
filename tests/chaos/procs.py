"""The processes of one chaos run, found in /proc: never by a broad name, only by our markers.

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


@dataclass(frozen=True)
class Proc:
    pid: int
    start: int  # clock ticks since boot: (pid, start) names one process even if pids are reused
    cmdline: str
    environ: dict[str, str]


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses


def start_time(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def alive(pid: int, start: int | None) -> bool:
    """`pid` runs, is not a zombie, and (if `start` is given) is the process we saw before."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] == "Z":
        return False
    return start is None or int(fields[19]) == start


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:  # gone, or not ours to read
        return b""


def scan(*markers: str) -> list[Proc]:
    """Every live process with one of `markers` in its environment or on its command line."""
    found: list[Proc] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        cmdline = _read(f"/proc/{entry}/cmdline").replace(b"\0", b" ").decode(errors="replace").strip()
        raw_env = _read(f"/proc/{entry}/environ")
        if not any(m.encode() in raw_env or m in cmdline for m in markers):
            continue
        start = start_time(int(entry))
        if start is None or not alive(int(entry), start):
            continue
        environ = {}
        for item in raw_env.split(b"\0"):
            key, _, value = item.decode(errors="replace").partition("=")
            if key.startswith("CHAOS_"):
                environ[key] = value
        found.append(Proc(int(entry), start, cmdline, environ))
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
