"""The control plane's side of the strategy runner: start it beside the gateway, stop it with it.

The runner is a child process in a session of its own (a Ctrl-C meant for `fracta up --foreground`
is not its); on Linux it gets SIGTERM when the control plane dies, however it dies.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from .. import atomic, processes
from ..errors import CorruptRecord, StrategyRunnerUnavailable
from ..repo import Repo

log = logging.getLogger("fracta.strategies")

START_WAIT = 30.0
STOP_WAIT = 10.0


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


def start(repo: Repo, gateway_url: str | None, wait: float = START_WAIT) -> Sidecar:
    """Start the runner and wait until it listens (runner.json names it)."""
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
    info = repo.state / "strategies" / "runner.json"
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
    )


def for_control_plane(repo: Repo, gateway_url: str) -> Sidecar | None:
    """The runner, or None (logged) if it fails to start: the rest of the control plane works on."""
    try:
        sidecar = start(repo, gateway_url)
    except StrategyRunnerUnavailable as exc:
        log.warning(
            "the strategy runner failed to start",
            extra={"event": "strategies.start_failed", "error": exc.message, "hint": exc.hint},
        )
        return None
    log.info("strategy runner started", extra={"event": "strategies.started", "pid": sidecar.proc.pid})
    return sidecar
