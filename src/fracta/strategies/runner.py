"""The strategy runner: a process of its own beside the control plane (never in an agent's
workspace), which imports the strategy modules and runs them.

It answers on a unix socket (mode 0600, so only this user's processes reach it): one JSON request
a connection, one JSON answer. The gateway's strategy_* tools and `fracta strategy` ask it; it
reaches the backend MCP servers back through the gateway, as the chessmaster, and writes to the
knowledge graph in the name of whoever asked. runner.json (in .fracta/strategies/) says where it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from .. import atomic, clock, processes
from ..errors import FractaError, InvalidInput
from ..repo import Repo
from .loader import Loader
from .service import Service

log = logging.getLogger("fracta.strategies")

INFO = "runner.json"
LOCK = "runner.lock"  # held by the serving runner for its whole life: one runner a repository
MAX_REQUEST = 16 * 1024 * 1024
SOCKET_MAX = 100  # AF_UNIX paths stop at 107 bytes (104 on macOS)


def folder(repo: Repo) -> Path:
    return repo.state / "strategies"


def socket_path(repo: Repo) -> Path:
    """The runner's socket; under the temp folder when the repo's path is too long for AF_UNIX."""
    path = folder(repo) / "runner.sock"
    if len(os.fsencode(path)) <= SOCKET_MAX:
        return path
    digest = hashlib.sha256(os.fsencode(folder(repo).resolve())).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"fracta-strategies-{digest}.sock"


async def answer(service: Service, request: Any) -> dict[str, Any]:
    """One request: {"op": "list"} | {"op": "describe", "name"} | {"op": "run", "name", "params", "by"}."""
    if not isinstance(request, dict) or request.get("op") not in ("list", "describe", "run"):
        raise InvalidInput("a strategy runner request is {op: list|describe|run, ...}")
    op = request["op"]
    if op == "list":
        return service.list()
    name = str(request.get("name", ""))
    if op == "describe":
        return service.describe(name)
    return await service.run(name, request.get("params") or {}, str(request.get("by") or "chessmaster"))


def encode_error(exc: FractaError) -> dict[str, Any]:
    return {
        "error": {
            "type": type(exc).__name__,
            "message": exc.message,
            "hint": exc.hint,
            "exit_code": exc.exit_code,
            "details": getattr(exc, "details", None),
        }
    }


async def _handle(service: Service, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        line = await reader.readline()
        try:
            request = json.loads(line)
            reply: dict[str, Any] = {"ok": await answer(service, request)}
        except FractaError as exc:
            reply = encode_error(exc)
        except ValueError:
            reply = encode_error(InvalidInput("a strategy runner request is one line of JSON"))
        except Exception as exc:  # a bug must not take the runner down; the traceback goes to the log
            log.exception("strategy request crashed", extra={"event": "strategies.crashed"})
            reply = encode_error(FractaError(f"the strategy runner failed: {type(exc).__name__}: {exc}"))
        writer.write(json.dumps(reply, ensure_ascii=False).encode() + b"\n")
        await writer.drain()
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def serve(repo: Repo, gateway_url: str | None, ready: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM/SIGINT; runner.json names this process and its socket meanwhile.
    LockTimeout at once if another runner serves this repository (a control plane's, or a
    standalone gateway's): the socket and runner.json stay that runner's."""
    folder(repo).mkdir(parents=True, exist_ok=True)
    with atomic.lock(folder(repo) / LOCK, timeout=0):
        await _serve_locked(repo, gateway_url, ready)


async def _serve_locked(repo: Repo, gateway_url: str | None, ready: asyncio.Event | None) -> None:
    from ..identity import chessmaster_token

    service = Service(repo, Loader.of(repo), gateway_url, chessmaster_token(repo))
    sock = socket_path(repo)
    with contextlib.suppress(FileNotFoundError):
        sock.unlink()  # a dead runner's (this one holds the lock: no other serves)
    old = os.umask(0o177)
    try:
        server = await asyncio.start_unix_server(lambda r, w: _handle(service, r, w), path=str(sock), limit=MAX_REQUEST)
    finally:
        os.umask(old)
    me = os.getpid()
    info = folder(repo) / INFO
    atomic.write_json(
        info,
        {"schema": 1, "pid": me, "pid_start": processes.start_time(me), "socket": str(sock), "started_at": clock.now()},
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("strategy runner listening", extra={"event": "strategies.listening", "socket": str(sock), "pid": me})
    if ready is not None:
        ready.set()
    try:
        async with server:
            await stop.wait()
    finally:
        with contextlib.suppress(FileNotFoundError, FractaError):
            if atomic.read_json(info).get("pid") == me:
                info.unlink()
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
        log.info("strategy runner stopped", extra={"event": "strategies.stopped", "pid": me})


def main(argv: list[str]) -> int:
    import argparse

    from .. import logs
    from .. import repo as repo_mod

    parser = argparse.ArgumentParser(prog="fracta-strategies")
    parser.add_argument("state")
    parser.add_argument("--gateway", default=None, help="the gateway's MCP URL")
    args = parser.parse_args(argv)
    repo = repo_mod.find(env={"FRACTA_HOME": args.state})
    logs.setup(repo.logs_dir, "strategies", foreground=False, fmt="json")
    try:
        asyncio.run(serve(repo, args.gateway))
    except FractaError as exc:
        print(f"error: {exc.message}", file=sys.stderr, flush=True)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
