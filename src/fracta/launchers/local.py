"""The local launcher: each turn runs under a detached runner process on this machine.

The runner (fracta/runner.py) starts in a session of its own, records its process group and
run marker, streams the runtime's output to the agent's output.jsonl and records the exit. The
launcher keeps one warm spare runner so that a spawn skips the interpreter's start-up.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from .. import atomic, processes, runner
from .. import repo as repo_mod
from ..errors import FractaError
from ..records import Agent
from .base import LOCAL, Started


def spawn_detached(repo: repo_mod.Repo, name: str, launch_id: str) -> tuple[int, int | None]:
    """Start the runner for `name`'s launch `launch_id` in a new session; returns (pid, start time)."""
    out = open(repo.agent_dir(name) / runner.LOG_FILE, "ab")  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fracta.runner", str(repo.state), name, launch_id],
            cwd=repo.root,
            env=runner_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        out.close()
    # Reap it when it exits so it never lingers as a zombie of the control plane.
    threading.Thread(target=proc.wait, daemon=True, name=f"reap-{name}").start()
    return proc.pid, processes.start_time(proc.pid)


def runner_env() -> dict[str, str]:
    """The environment a runner starts with: the control plane's, without an agent's run marker."""
    # A control plane started from inside an agent's shell inherits that agent's run marker: its
    # runners must not carry it, or stopping that agent would stop every agent.
    return {k: v for k, v in os.environ.items() if k != processes.RUN_VAR}


def read_group(repo: repo_mod.Repo, name: str) -> processes.Group | None:
    """The process group and run marker the agent's runner recorded (None before its first start)."""
    try:
        return processes.Group.from_dict(atomic.read_json(repo.agent_dir(name) / runner.GROUP_FILE))
    except (FileNotFoundError, FractaError, ValueError):
        return None


def stop(repo: repo_mod.Repo, name: str, grace: float, pid: int | None = None, pid_start: int | None = None) -> bool:
    """Stop every process of agent `name`, runner or not; returns True if anything ran.

    Its runner's group as recorded in group.json (or, before the runner recorded it, the runner
    `pid` of its record), and every process any of its runs started (the run marker).
    Raises FractaError if something cannot be stopped.
    """
    group = read_group(repo, name)
    if group is None or (pid is not None and group.pgid != pid):
        # No group yet (the runner quits by itself on the kill mark), or a runner newer than it.
        group = processes.Group(pgid=pid or 0, leader_start=pid_start, home=str(repo.state), marker=f"{name}/")
    return processes.stop(group, grace)


class LocalLauncher:
    """Starts runners for the spawner, keeping one warm spare: a runner process already started,
    with its imports done, waiting on stdin for the name of the agent it is to run.

    A spawn then skips the interpreter's start-up. If the control plane dies, the spare reads
    end-of-file and exits; a spare that is gone is simply replaced by a cold start. Built
    without a spare: `begin` (a control plane) starts keeping one.

    A new spare is started `refill_delay` seconds after a launch, not at once: its start-up
    would take CPU from the agent that is starting (a burst of spawns starts cold after the first).
    """

    kind = LOCAL

    def __init__(self, repo: repo_mod.Repo, refill_delay: float = 1.0) -> None:
        self.repo = repo
        self.refill_delay = refill_delay
        self._spare: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._warm = False  # keeping a spare: from begin() until close()
        self._stopped = False

    def start(self, repo: repo_mod.Repo, name: str, launch_id: str) -> Started:
        with self._lock:
            spare, self._spare = self._spare, None
        started: tuple[int, int | None] | None = None
        if spare is not None and spare.poll() is None and spare.stdin is not None:
            try:
                spare.stdin.write(f"{name} {launch_id}\n".encode())
                spare.stdin.close()
                started = spare.pid, processes.start_time(spare.pid)
                threading.Thread(target=spare.wait, daemon=True, name=f"reap-{name}").start()
            except OSError:
                started = None  # it died between poll and write: start cold
        if started is None:
            started = spawn_detached(repo, name, launch_id)
        if self._warm:
            self._refill_later()
        return Started(pid=started[0], pid_start=started[1])

    def stop(self, repo: repo_mod.Repo, agent: Agent, grace: float) -> bool:
        return stop(repo, agent.name, grace, agent.pid, agent.pid_start)

    def alive(self, repo: repo_mod.Repo, agent: Agent) -> bool | None:
        """Its runner by pid and start time; with no pid on record, not known yet (None)."""
        if agent.pid is None:
            return None
        return processes.alive(agent.pid, agent.pid_start)

    def output(self, repo: repo_mod.Repo, name: str) -> Path:
        return repo.agent_dir(name) / runner.OUTPUT_FILE

    def begin(self) -> None:
        self._warm = True
        self.refill()

    def _refill_later(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()  # a later launch restarts the wait
            self._timer = threading.Timer(self.refill_delay, self.refill)
            self._timer.daemon = True
            self._timer.start()

    def refill(self) -> None:
        """Start a spare runner unless one waits already."""
        with self._lock:
            if self._stopped:
                return
            if self._spare is None or self._spare.poll() is not None:
                self._spare = subprocess.Popen(
                    [sys.executable, "-m", "fracta.runner", str(self.repo.state), "--spare"],
                    cwd=self.repo.root,
                    env=runner_env(),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                    close_fds=True,
                )

    def close(self) -> None:
        with self._lock:
            spare, self._spare = self._spare, None
            self._stopped = True
            if self._timer is not None:
                self._timer.cancel()
        if spare is not None and spare.stdin is not None:
            spare.stdin.close()  # end-of-file: the spare exits
            try:
                spare.wait(timeout=5)
            except subprocess.TimeoutExpired:
                spare.kill()
