"""Starting, finding and stopping the local control plane (client side: light imports only)."""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass

from .. import atomic, processes
from ..errors import ControlPlaneUnavailable, CorruptRecord
from ..repo import Repo


@dataclass(frozen=True)
class ControlInfo:
    pid: int
    url: str
    started_at: str
    gateway_url: str | None = None


def read_info(repo: Repo) -> ControlInfo | None:
    """The running control plane from control.json, or None if none runs (stale files ignored)."""
    try:
        data = atomic.read_json(repo.control_path)
    except (FileNotFoundError, CorruptRecord):
        return None
    pid = data.get("pid")
    if not isinstance(pid, int) or not processes.alive(pid, data.get("pid_start")):
        return None
    return ControlInfo(
        pid=pid, url=str(data.get("url")), started_at=str(data.get("started_at")), gateway_url=data.get("gateway_url")
    )


def up(repo: Repo, wait: float = 30.0) -> tuple[ControlInfo, bool]:
    """Start the control plane in the background unless one runs; returns (info, started_now)."""
    repo.require_initialized()
    info = read_info(repo)
    if info is not None:
        return info, False
    import subprocess  # only to start one: `fracta status` and every other command just read control.json

    out = open(repo.logs_dir / "control.out", "ab")  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fracta.control.server", str(repo.state)],
            cwd=repo.root,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        out.close()
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        info = read_info(repo)
        if info is not None and (info.pid == proc.pid or proc.poll() is not None):
            return info, info.pid == proc.pid
        if proc.poll() is not None and info is None:
            raise ControlPlaneUnavailable(
                f"the control plane exited at start (code {proc.returncode}): {_tail(repo)}",
                f"see {repo.logs_dir / 'control.out'}; fracta up --foreground shows it live",
            )
        time.sleep(0.02)
    raise ControlPlaneUnavailable(
        f"the control plane did not start within {wait:g}s", f"see {repo.logs_dir / 'control.log'}"
    )


def down(repo: Repo, wait: float = 15.0) -> ControlInfo | None:
    """Stop the control plane (agents keep running). Returns what was stopped, or None."""
    info = read_info(repo)
    if info is None:
        return None
    os.kill(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and read_info(repo) is not None:
        time.sleep(0.05)
    if read_info(repo) is not None:
        os.kill(info.pid, signal.SIGKILL)
    return info


def _tail(repo: Repo) -> str:
    try:
        lines = (repo.logs_dir / "control.out").read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return "no output"
    errors = [line for line in lines[-5:] if line.startswith("error:")]
    return (errors[-1] if errors else lines[-1] if lines else "no output").removeprefix("error: ")
