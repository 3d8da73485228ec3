"""The gateway's side of the strategy runner: start it beside the gateway, keep one serving, stop it with it.

Whatever serves the gateway — the control plane (`fracta up`) or a standalone `fracta gateway`
(Compose, Kubernetes) — makes sure a runner serves the repository: it uses one that already runs
(another process's, left alone) or starts its own, and looks again every CHECK seconds: a runner
that ended (crashed, or another gateway's that stopped) is replaced. One runner a repository: a
runner holds .fracta/strategies/runner.lock while it lives, and one that cannot take it exits at once.

The runner is a child process in a session of its own (a Ctrl-C meant for `fracta up --foreground`
is not its); on Linux it gets SIGTERM when the process that started it dies, however it dies.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from .. import atomic, processes
from ..errors import EXIT_LOCKED, CorruptRecord, StrategyRunnerUnavailable
from ..repo import Repo
from .client import INFO

log = logging.getLogger("fracta.strategies")

START_WAIT = 30.0
STOP_WAIT = 10.0
CHECK = 2.0  # seconds between a Keeper's looks: the longest strategy_run stays down after a crash


@dataclass
class Sidecar:
    proc: subprocess.Popen[bytes]

    def stop(self, wait: float = STOP_WAIT) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def serving(repo: Repo) -> int | None:
    """The pid of the live runner runner.json names, or None."""
    try:
        data = atomic.read_json(repo.state / "strategies" / INFO)
    except (FileNotFoundError, CorruptRecord):
        return None
    pid = data.get("pid")
    return pid if isinstance(pid, int) and processes.alive(pid, data.get("pid_start")) else None


def ensure(repo: Repo, gateway_url: str | None, wait: float = START_WAIT) -> Sidecar | None:
    """A runner for this repository: the one started here (the caller stops it), or None when
    another process's runner serves it already (found at once, or winning a race to start)."""
    if serving(repo) is not None:
        return None
    deadline = time.monotonic() + wait
    try:
        return start(repo, gateway_url, wait)
    except StrategyRunnerUnavailable as exc:
        if (exc.details or {}).get("exit_code") != EXIT_LOCKED:
            raise
    while time.monotonic() < deadline:  # another runner holds the lock: wait until it names itself
        if serving(repo) is not None:
            return None
        time.sleep(0.01)
    raise StrategyRunnerUnavailable(
        "another strategy runner holds .fracta/strategies/runner.lock but does not answer",
        f"see {repo.logs_dir / 'strategies.log'}",
    )


def start(repo: Repo, gateway_url: str | None, wait: float = START_WAIT) -> Sidecar:
    """Start the runner and wait until it listens (runner.json names it). The error's `details`
    carry the runner's exit code (EXIT_LOCKED: another runner serves this repository)."""
    argv = [sys.executable, "-m", "fracta.strategies.runner", str(repo.state)]
    if gateway_url:
        argv += ["--gateway", gateway_url]
    repo.logs_dir.mkdir(parents=True, exist_ok=True)
    with open(repo.logs_dir / "strategies.out", "ab") as out:
        proc = subprocess.Popen(
            argv,
            cwd=repo.root,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=processes.die_with_parent(),
        )
    info = repo.state / "strategies" / INFO
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        # Not written yet, or half-written by an earlier runner: look again until ours names itself.
        with contextlib.suppress(FileNotFoundError, CorruptRecord):
            if atomic.read_json(info).get("pid") == proc.pid:
                return Sidecar(proc)
        if proc.poll() is not None:
            break
        time.sleep(0.01)
    sidecar = Sidecar(proc)
    sidecar.stop()
    raise StrategyRunnerUnavailable(
        f"the strategy runner did not start (exit code {proc.returncode})",
        f"see {repo.logs_dir / 'strategies.out'} and {repo.logs_dir / 'strategies.log'}",
        {"exit_code": proc.returncode},
    )


class Keeper:
    """Keeps a runner serving the repository while a gateway lives: its own, started here, or
    another process's. Every CHECK seconds it looks; a runner gone (crashed, SIGKILLed, or another
    gateway's that stopped with it) is replaced by one of its own, which it stops with itself."""

    def __init__(self, repo: Repo, gateway_url: str) -> None:
        self.repo = repo
        self.gateway_url = gateway_url
        self.own: Sidecar | None = None
        self._seen: int | None = None  # the runner last found or started (logged once)
        self._failing = False  # starting one failed at the last look (logged once)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="strategy-runner", daemon=True)

    def start(self) -> Keeper:
        self.check()
        self._thread.start()
        return self

    def check(self) -> None:
        """Make sure a runner serves: start one if none does. Each change is logged once (a runner
        found, started, ended, or failing to start: retried at the next look)."""
        if self.own is not None and self.own.proc.poll() is None:
            return
        if self.own is not None:
            log.warning(
                "the strategy runner ended; starting another",
                extra={"event": "strategies.ended", "exit_code": self.own.proc.returncode},
            )
            self.own = None
        if self._found(serving(self.repo)):
            return
        try:
            self.own = ensure(self.repo, self.gateway_url)
        except StrategyRunnerUnavailable as exc:
            if not self._failing:
                log.warning(
                    "the strategy runner failed to start",
                    extra={"event": "strategies.start_failed", "error": exc.message, "hint": exc.hint},
                )
            self._failing = True
            return
        self._failing = False
        if self.own is None:  # another process's runner won the race to start
            self._found(serving(self.repo))
        else:
            self._seen = self.own.proc.pid
            log.info("strategy runner started", extra={"event": "strategies.started", "pid": self._seen})

    def _found(self, pid: int | None) -> bool:
        """Another process's runner serves (`pid`): logged when it is a new one."""
        if pid is None:
            return False
        if pid != self._seen:
            self._seen = pid
            log.info("strategy runner found", extra={"event": "strategies.found", "pid": pid})
        return True

    def _watch(self) -> None:
        while not self._stopping.wait(CHECK):
            self.check()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.own is not None:
            self.own.stop()


def for_gateway(repo: Repo, gateway_url: str) -> Keeper:
    """A runner for this gateway's strategy tools, kept serving until the Keeper is stopped: the
    gateway works on while none can start (strategy_run says the runner is down)."""
    return Keeper(repo, gateway_url).start()
