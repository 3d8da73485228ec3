"""Processes we start and stop: identity by (pid, start time), and finding and stopping all of an agent.

An agent's processes are found two ways, both recorded in its folder (group.json) by its runner
before the agent's program starts (see `Group`):

- its process group: the runner leads its own session and group, and the program and whatever it
  starts stay in that group unless they move out. Linux never reuses a pid while it is still a
  process group id, so the group is found, and signalled, even after the runner itself died;
- its run marker: `FRACTA_RUN=<name>/<launch id>` in the program's environment, inherited by every
  descendant that keeps its environment, including those that start a new group or session
  (node's detached spawns, daemons) and those reparented to init when the runner died.

What escapes both is a process that leaves the group *and* starts with an environment built from
scratch (`setsid env -i ...`). A cgroup would hold those too, but an unprivileged user can rarely
create one (cgroup v2 needs a delegated subtree, from systemd-run --user --scope; on the machine
this was written on only a hybrid v1/v2 mount without controllers was there), so fracta does not
depend on one. Processes are read from /proc (Linux); a process of another user cannot be
signalled, and `stop` then says so rather than reporting the agent stopped.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import FractaError

if TYPE_CHECKING:  # signal is imported where processes are stopped, off `fracta list`'s path
    import signal

RUN_VAR = "FRACTA_RUN"  # the run marker's environment variable
HOME_VAR = "FRACTA_HOME"


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or None."""
    stat = _stat(pid)
    return stat[2] if stat else None


def alive(pid: int | None, started: int | None) -> bool:
    """True if `pid` runs and is the same process we recorded (not a reused pid) and not a zombie."""
    if not pid:
        return False
    stat = _stat(pid)
    if stat is None or (started is not None and stat[2] != started):
        return False
    return stat[0] != "Z"


def _stat(pid: int | str) -> tuple[str, int, int] | None:
    """(state, process group id, start time) of a process, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError, NotADirectoryError):
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    try:
        return fields[0], int(fields[2]), int(fields[19])
    except (IndexError, ValueError):
        return None


def _environ(pid: str) -> dict[bytes, bytes]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # gone, or not ours to read (another user, a setuid program)
        return {}
    pairs = (entry.partition(b"=") for entry in raw.split(b"\0") if entry)
    return {key: value for key, _, value in pairs}


@dataclass(frozen=True)
class Group:
    """What identifies every process of one run of an agent: its runner's group and its run marker."""

    pgid: int  # the runner's pid: it leads its own session and process group
    leader_start: int | None  # the runner's start time, to tell our group from a reused pid
    home: str  # FRACTA_HOME of the repository
    marker: str  # the value of FRACTA_RUN in the program's environment: "<name>/<launch id>"

    @property
    def name(self) -> str:
        return self.marker.split("/", 1)[0]

    def to_dict(self) -> dict[str, object]:
        return {
            "schema": 1,
            "pgid": self.pgid,
            "leader_start": self.leader_start,
            "home": self.home,
            "marker": self.marker,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Group:
        pgid, start = data.get("pgid"), data.get("leader_start")
        if not isinstance(pgid, int) or not isinstance(data.get("marker"), str):
            raise ValueError("group record without pgid or marker")
        return cls(
            pgid=pgid,
            leader_start=start if isinstance(start, int) else None,
            home=str(data.get("home", "")),
            marker=str(data["marker"]),
        )


def _procs() -> Iterator[tuple[str, tuple[str, int, int]]]:
    """Every live (non-zombie) process: (pid, (state, pgid, start time))."""
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(entry)) is not None and stat[0] != "Z":
            yield entry, stat


def _group_is_ours(group: Group) -> bool:
    # While the leader lives, it must be the runner we recorded. Once it is gone, the group id
    # cannot have been reused as long as the group still has members (Linux keeps the pid).
    if group.pgid <= 0:
        return False  # no group recorded (killpg(0) would signal our own)
    leader = _stat(group.pgid)
    return leader is None or group.leader_start is None or leader[2] == group.leader_start


def members(group: Group) -> list[int]:
    """The pids of every live process of the agent: its runner's group, and every process marked
    as started by any run of the agent (an earlier run's leftovers too)."""
    ours = _group_is_ours(group)
    found: list[int] = []
    for pid, (_, pgid, _) in _procs():
        if (ours and pgid == group.pgid) or (group.home and _marked(pid, group.home, group.name)):
            found.append(int(pid))
    return found


def named(home: str, name: str) -> list[int]:
    """The pids of every live process that any run of agent `name` in this repository started."""
    return [int(pid) for pid, _ in _procs() if _marked(pid, home, name)]


def _marked(pid: str, home: str, name: str) -> bool:
    env = _environ(pid)
    run = env.get(RUN_VAR.encode())
    return run is not None and run.startswith(f"{name}/".encode()) and env.get(HOME_VAR.encode()) == home.encode()


def is_marked(env: Mapping[str, str], home: str, name: str) -> bool:
    """True if an environment (this process's, say) carries a run marker of agent `name`."""
    return env.get(RUN_VAR, "").startswith(f"{name}/") and env.get(HOME_VAR) == home


def _signal(group: Group, pids: list[int], sig: signal.Signals) -> None:
    if _group_is_ours(group):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group.pgid, sig)  # atomic for the whole group, even against a fork under way
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def stop(group: Group, grace: float) -> bool:
    """SIGTERM every process of the run, SIGKILL what is left after `grace` seconds; wait until none runs.

    Returns True if anything was running. Raises FractaError if something survives SIGKILL (a
    process of another user, or stuck in the kernel): the caller must not report it stopped.
    """
    import signal

    left = members(group)
    if not left:
        return False
    _signal(group, left, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = members(group)
    deadline = time.monotonic() + 10.0
    while left and time.monotonic() < deadline:
        _signal(group, left, signal.SIGKILL)
        time.sleep(0.02)
        left = members(group)
    if left:
        raise FractaError(
            f"could not stop processes {', '.join(map(str, left))} of {group.name!r}",
            f"stop them by hand (kill -KILL {' '.join(map(str, left))}), then try again",
        )
    return True


def terminate_group(pgid: int, started: int | None, grace: float) -> bool:
    """SIGTERM the process group led by `pgid`, then SIGKILL after `grace` seconds.

    For processes fracta started without a run marker (the control plane, a spare runner).
    Returns True if anything was signalled. The recorded start time guards against pid reuse.
    """
    return stop(Group(pgid=pgid, leader_start=started, home="", marker=""), grace)
