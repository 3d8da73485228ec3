"""Process tracking through psutil, against real subprocesses: alive, start time, groups, zombies, stop."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from fracta import processes

# A leader that starts one child in its own group without the run marker, and one that leaves the
# group (a new session) but keeps the marker, then prints both pids and waits for stdin to close.
# Each child says it runs before the leader prints: Popen returns once exec has closed its error
# pipe, which is not yet the new program running with its environment in place.
LEADER = """
import os, subprocess, sys
unmarked = {k: v for k, v in os.environ.items() if k != "FRACTA_RUN"}
child = [sys.executable, "-c", "import sys; print(flush=True); sys.stdin.read()"]
stay = subprocess.Popen(child, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=unmarked)
leave = subprocess.Popen(child, stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
stay.stdout.readline(), leave.stdout.readline()
print(stay.pid, leave.pid, flush=True)
sys.stdin.read()
"""


# The marker's repository, one per test process: tests run at once in other workers mark theirs.
HOME = f"/repo-of-worker-{os.getpid()}/.fracta"


def proc_stat_start(pid: int) -> int:
    """Field 22 of /proc/PID/stat: the start time fracta recorded before it used psutil."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    return int(raw[raw.rindex(")") + 2 :].split()[19])


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    with subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE) as proc:
        yield proc
        proc.kill()


@pytest.fixture
def leader() -> Iterator[tuple[subprocess.Popen[str], int, int]]:
    """A group leader in its own session, with a child in its group and one that left it, all marked."""
    env = {**os.environ, processes.RUN_VAR: "alpha/1", processes.HOME_VAR: HOME}
    argv = [sys.executable, "-c", LEADER]
    with subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, start_new_session=True
    ) as proc:
        assert proc.stdout is not None
        stay, leave = map(int, proc.stdout.readline().split())
        yield proc, stay, leave
        for pid in (proc.pid, stay, leave):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_running_process_is_alive_under_its_recorded_start_time(sleeper: subprocess.Popen[bytes]) -> None:
    started = processes.start_time(sleeper.pid)
    assert started is not None
    assert processes.alive(sleeper.pid, started)
    assert processes.alive(sleeper.pid, None)


def test_a_pid_recorded_with_another_start_time_is_a_reused_pid_and_not_alive(
    sleeper: subprocess.Popen[bytes],
) -> None:
    started = processes.start_time(sleeper.pid)
    assert started is not None
    assert not processes.alive(sleeper.pid, started + 1)
    assert not processes.alive(sleeper.pid, started - 1)


def test_a_process_that_exited_and_was_reaped_is_not_alive() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    started = processes.start_time(proc.pid)
    proc.wait()
    assert not processes.alive(proc.pid, started)
    assert processes.start_time(proc.pid) is None


def test_no_pid_and_impossible_pids_are_not_alive() -> None:
    assert not processes.alive(None, None)
    assert not processes.alive(0, None)
    assert not processes.alive(-1, None)
    assert processes.start_time(-1) is None


def test_a_zombie_is_dead_and_no_member_of_its_group(sleeper: subprocess.Popen[bytes]) -> None:
    started = processes.start_time(sleeper.pid)
    sleeper.kill()
    # Wait for the exit but leave the child unreaped: a zombie until sleeper.wait() in the fixture.
    os.waitid(os.P_PID, sleeper.pid, os.WEXITED | os.WNOWAIT)
    assert psutil.Process(sleeper.pid).status() == psutil.STATUS_ZOMBIE
    assert not processes.alive(sleeper.pid, started)
    assert sleeper.pid not in processes.members(processes.Group(os.getpgid(0), None, "", "x/1"))


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="Linux: compares with /proc")
def test_start_times_are_the_clock_ticks_since_boot_that_records_before_psutil_hold(
    sleeper: subprocess.Popen[bytes],
) -> None:
    assert processes.start_time(sleeper.pid) == proc_stat_start(sleeper.pid)
    assert processes.alive(sleeper.pid, proc_stat_start(sleeper.pid))
    assert processes.start_time(1) == proc_stat_start(1)


def test_start_time_agrees_with_psutils_public_create_time(sleeper: subprocess.Popen[bytes]) -> None:
    # What start_time falls back to on a psutil without a creation time since boot.
    proc = psutil.Process(sleeper.pid)
    figure = round((proc.create_time() - psutil.boot_time()) * os.sysconf("SC_CLK_TCK"))
    started = processes.start_time(sleeper.pid)
    assert started is not None
    assert abs(figure - started) <= 1  # the boot time is a whole second, create_time a float


def test_members_are_the_leaders_group_and_every_marked_process(
    leader: tuple[subprocess.Popen[str], int, int],
) -> None:
    proc, stay, leave = leader
    group = processes.Group(proc.pid, processes.start_time(proc.pid), HOME, "alpha/1")
    assert sorted(processes.members(group)) == sorted([proc.pid, stay, leave])
    assert sorted(processes.named(HOME, "alpha")) == sorted([proc.pid, leave])
    assert processes.named(HOME, "beta") == []
    assert processes.named("/other/.fracta", "alpha") == []


def test_a_group_whose_leader_started_at_another_time_is_not_ours(
    leader: tuple[subprocess.Popen[str], int, int],
) -> None:
    proc, _, _ = leader
    started = processes.start_time(proc.pid)
    assert started is not None
    unmarked = processes.Group(proc.pid, started + 1, "", "")
    assert processes.members(unmarked) == []
    assert not processes.terminate_group(proc.pid, started + 1, grace=1.0)
    assert processes.alive(proc.pid, started)


def test_stop_ends_the_group_and_the_marked_process_that_left_it(
    leader: tuple[subprocess.Popen[str], int, int],
) -> None:
    proc, stay, leave = leader
    group = processes.Group(proc.pid, processes.start_time(proc.pid), HOME, "alpha/1")
    assert processes.stop(group, grace=5.0)
    proc.wait()
    assert processes.members(group) == []
    for pid in (stay, leave):  # reaped by init or by the leader as it died: gone or a zombie
        assert not processes.alive(pid, None)
    assert not processes.stop(group, grace=5.0)


def test_one_pids_checks_agree_through_proc_and_through_psutil(
    sleeper: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped yet

    def look() -> list[object]:
        started = processes.start_time(sleeper.pid)
        assert started is not None
        return [
            started,
            processes.alive(sleeper.pid, started),
            processes.alive(sleeper.pid, started + 1),
            processes.start_time(gone.pid),
            processes.alive(gone.pid, None),
            processes.alive(zombie.pid, None),
            processes.start_time(-1),
        ]

    direct = look()
    monkeypatch.setattr(processes, "_PROC_STAT", [False])  # as where /proc is missing (macOS)
    assert look() == direct
    assert direct[1:] == [True, False, None, False, False, None]
    zombie.wait()
