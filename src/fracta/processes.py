"""Processes we start and stop: identity by (pid, start time), and finding and stopping all of an agent.

An agent's processes are found two ways, both recorded in its folder (group.json) by its runner
before the agent's program starts (see `Group`):

- its process group: the runner leads its own session and group, and the program and whatever it
  starts stay in that group unless they move out. POSIX systems never reuse a pid while it is
  still a process group id, so the group is found, and signalled, even after the runner itself died;
- its run marker: `FRACTA_RUN=<name>/<launch id>` in the program's environment, inherited by every
  descendant that keeps its environment, including those that start a new group or session
  (node's detached spawns, daemons) and those reparented to init when the runner died.

What escapes both is a process that leaves the group *and* starts with an environment built from
scratch (`setsid env -i ...`). A cgroup would hold those too, but an unprivileged user can rarely
create one (cgroup v2 needs a delegated subtree, from systemd-run --user --scope; on the machine
this was written on only a hybrid v1/v2 mount without controllers was there), so fracta does not
depend on one. A process of another user cannot be signalled, and `stop` then says so rather
than reporting the agent stopped.

Processes are read through psutil, so this works on Linux and macOS alike; process groups and
signals are POSIX's, so not on Windows. psutil costs 12-20 ms to import, so it is imported only
where processes are scanned (one pid's checks read /proc/PID/stat where it exists, see
_proc_stat): `fracta list` never loads it while every agent's runner lives. Measured cold with
100 running agents whose runner is alive (2 shared cores, medians of 30): `fracta list` took 66-77
ms reading /proc and 85 ms with every check through psutil, against 12-14 ms for `python -c pass`
(5.3x -> 6.2x, over the 6x target); one alive() check went from 19 to 34 us; finding a group's
members among 130 processes took 3.2 ms either way.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import FractaError

if TYPE_CHECKING:  # imported where they are used, off `fracta list`'s path
    import signal

    import psutil

RUN_VAR = "FRACTA_RUN"  # the run marker's environment variable
HOME_VAR = "FRACTA_HOME"


def start_time(pid: int) -> int | None:
    """When the process started, as an integer fixed for its life, or None if it is gone.

    Clock ticks since boot on Linux: the figure fracta read from /proc/PID/stat before it used
    psutil, so records written then still name the same processes. On macOS, the start time the
    kernel recorded for the process, in clock ticks (hundredths of a second) since the epoch.
    """
    if _proc_stat_readable():
        stat = _proc_stat(pid)
        return stat[1] if stat is not None else None
    proc = _process(pid)
    return _started(proc) if proc is not None else None


def alive(pid: int | None, started: int | None) -> bool:
    """True if `pid` runs and is the same process we recorded (not a reused pid) and not a zombie."""
    if not pid:
        return False
    if _proc_stat_readable():
        stat = _proc_stat(pid)
        return stat is not None and (started is None or stat[1] == started) and stat[0] not in "ZXx"
    proc = _process(pid)
    if proc is None or (started is not None and _started(proc) != started):
        return False
    return not _zombie(proc)


# The one-pid checks (start_time, alive) read /proc/PID/stat where Linux has it, as psutil itself
# does there, without importing psutil: every `fracta spawn` (it checks the control plane's pid)
# and every runner (it records its program's start) paid psutil's 12-20 ms import on the path to
# an agent's first call, which took Codex's from 1.10-1.19x to 1.24x the CLI run by hand
# (bench/runtime_first_call.py, 11 rounds); reading /proc, 1.12x and 1.19x. Scans of every
# process (members, named) use psutil.
_PROC_STAT: list[bool] = []


def _proc_stat_readable() -> bool:
    if not _PROC_STAT:
        _PROC_STAT.append(os.path.exists(f"/proc/{os.getpid()}/stat"))
    return _PROC_STAT[0]


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks since boot) of `pid`, or None if there is none."""
    if pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:  # gone (FileNotFoundError, or ESRCH while it is being reaped)
        return None
    fields = raw[raw.rindex(b")") + 2 :].split()  # the command name, in parentheses, may hold spaces
    return fields[0].decode(), int(fields[19])


def _process(pid: int) -> psutil.Process | None:
    import psutil  # 12-20 ms: only where a pid is checked (see the module's docstring)

    try:
        return psutil.Process(pid)
    except (psutil.Error, ValueError):  # gone, or a pid no process can have (psutil says ValueError)
        return None


def _started(proc: psutil.Process) -> int | None:
    import psutil

    ticks = os.sysconf("SC_CLK_TCK")
    try:
        # psutil identifies a process by its start time since boot (Process._get_ident on Linux and
        # macOS), which no change of the wall clock moves; create_time() adds the boot time, which
        # moves with every step of the wall clock, and so would read differently before and after.
        since_boot = proc._proc.create_time(monotonic=True)  # type: ignore[attr-defined]
    except (AttributeError, TypeError):  # a psutil without that argument: the boot time is read twice, very close
        since_boot = proc.create_time() - psutil.boot_time()
    except psutil.Error:
        return None
    return round(float(since_boot) * ticks)


def _zombie(proc: psutil.Process) -> bool:
    import psutil

    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.ZombieProcess:
        return True
    except psutil.Error:  # gone since
        return True


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def _environ(proc: psutil.Process) -> dict[str, str]:
    import psutil

    try:
        return proc.environ()
    except psutil.Error:  # gone, or not ours to read (another user, a setuid program)
        return {}


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


def _procs() -> Iterator[psutil.Process]:
    """Every live (non-zombie) process."""
    import psutil

    for proc in psutil.process_iter():
        if not _zombie(proc):
            yield proc


def _group_is_ours(group: Group) -> bool:
    # While the leader lives, it must be the runner we recorded. Once it is gone, the group id
    # cannot have been reused as long as the group still has members (POSIX keeps the pid).
    if group.pgid <= 0:
        return False  # no group recorded (killpg(0) would signal our own)
    leader = _process(group.pgid)
    return leader is None or group.leader_start is None or _started(leader) in (None, group.leader_start)


def members(group: Group) -> list[int]:
    """The pids of every live process of the agent: its runner's group, and every process marked
    as started by any run of the agent (an earlier run's leftovers too)."""
    ours = _group_is_ours(group)
    found: list[int] = []
    for proc in _procs():
        if (ours and _pgid(proc.pid) == group.pgid) or (group.home and _marked(proc, group.home, group.name)):
            found.append(proc.pid)
    return found


def named(home: str, name: str) -> list[int]:
    """The pids of every live process that any run of agent `name` in this repository started."""
    return [proc.pid for proc in _procs() if _marked(proc, home, name)]


def _marked(proc: psutil.Process, home: str, name: str) -> bool:
    return is_marked(_environ(proc), home, name)


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


def die_with_parent() -> Callable[[], None] | None:
    """Linux: a preexec_fn that has the child sent SIGTERM when the process that started it dies (even by SIGKILL)."""
    import sys

    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import signal

    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def set_it() -> None:  # runs in the child between fork and exec: C calls only
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return set_it
