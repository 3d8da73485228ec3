"""Starting, finding and stopping the local control plane (client side: light imports only)."""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .. import atomic, processes
from ..errors import EXIT_ERROR, EXIT_USAGE, ConfigError, ControlPlaneUnavailable, CorruptRecord, FractaError
from ..repo import Repo


@dataclass(frozen=True)
class ControlInfo:
    pid: int
    url: str
    started_at: str
    gateway_url: str | None = None


def instance_path(repo: Repo, instance: str | None) -> Path:
    """control.json, or control-<instance>.json for another control plane on the same store (the
    postgres backend lets several run side by side; the files backend allows one)."""
    return repo.control_path if not instance else repo.state / f"control-{instance}.json"


def read_info(repo: Repo, instance: str | None = None) -> ControlInfo | None:
    """The running control plane from control.json, or None if none runs (stale files ignored).
    Without an `instance` and with none in control.json, any other instance that runs."""
    info = _read_info(instance_path(repo, instance))
    if info is None and instance is None:
        for other in sorted(repo.state.glob("control-*.json")):
            if (info := _read_info(other)) is not None:
                break
    return info


def _read_info(path: Path) -> ControlInfo | None:
    try:
        data = atomic.read_json(path)
    except (FileNotFoundError, CorruptRecord):
        return None
    pid = data.get("pid")
    if not isinstance(pid, int) or not processes.alive(pid, data.get("pid_start")):
        return None
    return ControlInfo(
        pid=pid, url=str(data.get("url")), started_at=str(data.get("started_at")), gateway_url=data.get("gateway_url")
    )


def config_changed(repo: Repo) -> bool:
    """fracta.yaml was changed after the running control plane read it (control.json is written
    once it has): it keeps the settings it read until `fracta down && fracta up`."""
    try:
        return repo.config_path.stat().st_mtime_ns > repo.control_path.stat().st_mtime_ns
    except FileNotFoundError:
        return False


def up(repo: Repo, wait: float = 30.0, instance: str | None = None) -> tuple[ControlInfo, bool]:
    """Start the control plane in the background unless one runs; returns (info, started_now).

    It is started detached (see `detach`): nobody's child, in its own session, so nothing that
    ends its starter's process tree (an AI CLI ending its MCP servers' descendants) ends it or the
    agents under it. fracta.yaml is checked as a whole first (a ConfigError, exit 2, starts
    nothing). A start that fails is reported with the error and hint it printed, and its exit code.
    """
    repo.require_initialized()
    info = read_info(repo, instance)
    if info is not None:
        return info, False
    import subprocess  # only to start one: `fracta status` and every other command just read control.json

    from .. import config_check, environment

    config_check.check(repo.config_path)

    out = repo.logs_dir / "control.out"
    offset = out.stat().st_size if out.exists() else 0
    argv = [
        sys.executable,
        "-m",
        "fracta.control.server",
        str(repo.state),
        *(["--instance", instance] if instance else []),
    ]
    try:
        launched = subprocess.run(
            [sys.executable, "-m", "fracta.control.daemon", "detach", str(out), *argv],
            cwd=repo.root,
            env=environment.for_control_plane(os.environ),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=wait,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ControlPlaneUnavailable(f"could not start the control plane: {exc}", "fracta up --foreground") from None
    try:
        pid, pid_start = (int(field) for field in launched.stdout.split()[:2])
    except ValueError:
        why = launched.stderr.decode(errors="replace").strip()[-500:] or f"exit code {launched.returncode}"
        raise ControlPlaneUnavailable(f"could not start the control plane: {why}", "fracta up --foreground") from None
    return _await_start(repo, pid, pid_start, out, offset, wait, instance)


def _await_start(
    repo: Repo, pid: int, pid_start: int, out: Path, offset: int, wait: float, instance: str | None
) -> tuple[ControlInfo, bool]:
    """Wait until the control plane `pid` has written control.json, or has died saying why."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        info = read_info(repo, instance)
        if info is not None and (instance is None or info.pid == pid):
            return info, info.pid == pid  # another one may have won the race: ours then exits
        if not processes.alive(pid, pid_start):
            if (info := read_info(repo, instance)) is not None:
                return info, False
            raise _failed(out, offset)
        time.sleep(0.02)
    raise ControlPlaneUnavailable(
        f"the control plane (pid {pid}) did not start within {wait:g}s", f"see {repo.logs_dir / 'control.log'}"
    )


def detach(log: str, argv: list[str]) -> tuple[int, int]:
    """Start `argv` as nobody's child: fork, and in the child start a new session and exec.

    Run in a short-lived process of its own (`python -m fracta.control.daemon detach LOG ARGV...`)
    that exits at once, so the program is re-parented away from whoever asked for it (double fork).
    Returns (pid, start time) of the program; its stdin is /dev/null, its output goes to `log`.
    """
    pid = os.fork()
    if pid == 0:  # the child (this process has a single thread: plain Python is safe until exec)
        try:
            os.setsid()
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.execv(argv[0], argv)
        except OSError as exc:  # told in the log, where `up` looks for the reason
            os.write(2, f"error: cannot run {argv[0]}: {exc.strerror or exc}\n".encode())
        finally:
            os._exit(127)
    # Not yet reaped, the child's /proc entry stays until this process exits, even if it died.
    return pid, processes.start_time(pid) or 0


def down(repo: Repo, wait: float = 15.0, instance: str | None = None) -> ControlInfo | None:
    """Stop the control plane (`instance`, or every one running here); agents keep running.
    Returns the first one stopped, or None if none ran."""
    paths = [instance_path(repo, instance)]
    if instance is None:
        paths += sorted(repo.state.glob("control-*.json"))
    running = [info for path in paths if (info := _read_info(path)) is not None]
    for info in running:
        os.kill(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and any(processes.alive(info.pid, None) for info in running):
        time.sleep(0.05)
    for info in running:
        if processes.alive(info.pid, None):
            os.kill(info.pid, signal.SIGKILL)
    return running[0] if running else None


@dataclass(frozen=True)
class Failure:
    """What a control plane that exited at start printed: its error, hint and exit code."""

    message: str
    hint: str = ""
    exit_code: int | None = None


def _failure(out: Path, offset: int) -> Failure:
    """The last error (with its continuation lines), hint and exit code the control plane printed
    since `offset` of `out`; without an `error:` line, its last line."""
    try:
        with out.open("rb") as f:
            f.seek(offset)
            lines = f.read().decode(errors="replace").strip().splitlines()
    except FileNotFoundError:
        lines = []
    starts = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    if not starts:
        return Failure(lines[-1] if lines else "it printed nothing")
    message = [lines[starts[-1]].removeprefix("error: ")]
    hint, code = "", None
    for line in lines[starts[-1] + 1 :]:
        if line.startswith("hint: "):
            hint = line.removeprefix("hint: ")
        elif line.startswith("exit: ") and line[6:].strip().isdigit():
            code = int(line[6:])
        elif not hint and code is None:
            message.append(line)  # a message of several lines (each problem of fracta.yaml)
    return Failure("\n".join(message), hint, code)


def _failed(out: Path, offset: int) -> FractaError:
    """The error to raise for a control plane that exited at start, with its exit code (README's)."""
    found = _failure(out, offset)
    see = f"see {out}; fracta up --foreground shows it live"
    if found.exit_code == EXIT_USAGE:  # its config: the same error the CLI's own check gives
        return ConfigError(found.message, found.hint or see)
    error = ControlPlaneUnavailable(
        f"the control plane exited at start: {found.message}", (f"{found.hint}; " if found.hint else "") + see
    )
    if found.exit_code not in (None, 0, EXIT_ERROR):  # a specific failure keeps its code; others are 8
        error.exit_code = found.exit_code
    return error


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[0] != "detach":
        print("usage: python -m fracta.control.daemon detach LOG PROGRAM [ARG...]", file=sys.stderr)
        return 2
    pid, start = detach(argv[1], argv[2:])
    print(pid, start, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
