"""Asking the strategy runner (the gateway's strategy_* tools, `fracta strategy`): light imports only.

An error the runner answers comes back as the same FractaError class, with its exit code and its
structured details (a failed step's name, the finished steps' results)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from .. import atomic, errors, processes
from ..errors import CorruptRecord, FractaError, StrategyRunnerUnavailable
from ..repo import Repo

INFO = "runner.json"
MARGIN = 30.0  # beyond strategies.timeout: the runner answers a run that ran out of time itself


def _socket(repo: Repo) -> Path:
    try:
        data = atomic.read_json(repo.state / "strategies" / INFO)
    except (FileNotFoundError, CorruptRecord):
        data = {}
    pid, sock = data.get("pid"), data.get("socket")
    if not isinstance(pid, int) or not isinstance(sock, str) or not processes.alive(pid, data.get("pid_start")):
        raise StrategyRunnerUnavailable(
            "the strategy runner is not running", "fracta up starts it with the control plane"
        )
    return Path(sock)


def ask(repo: Repo, request: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
    """Send one request to the runner and return its answer; its error raised as a FractaError."""
    if timeout is None:
        timeout = float(repo.config.get("strategies.timeout")) + MARGIN
    path = _socket(repo)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(path))
            s.sendall(json.dumps(request).encode() + b"\n")
            with s.makefile("rb") as f:
                line = f.readline()
    except OSError as exc:
        raise StrategyRunnerUnavailable(
            f"the strategy runner did not answer: {exc}", "fracta down && fracta up restarts it"
        ) from None
    try:
        reply = json.loads(line)
    except ValueError:
        raise StrategyRunnerUnavailable("the strategy runner closed the connection without an answer") from None
    if "error" in reply:
        raise rebuild(reply["error"])
    answer: dict[str, Any] = reply["ok"]
    return answer


def rebuild(error: dict[str, Any]) -> FractaError:
    """The FractaError the runner raised, by class name, with its exit code and details."""
    cls = getattr(errors, str(error.get("type")), None)
    message, hint = str(error.get("message", "")), str(error.get("hint") or "")
    exc: FractaError
    if isinstance(cls, type) and issubclass(cls, errors.StrategyError):
        exc = cls(message, hint, error.get("details"))
    elif isinstance(cls, type) and issubclass(cls, FractaError):
        try:
            exc = cls(message, hint)
        except TypeError:  # a class with its own constructor (GitError): its message and code
            exc = FractaError(message, hint)
    else:
        exc = FractaError(message, hint)
    if isinstance(error.get("exit_code"), int):
        exc.exit_code = error["exit_code"]
    return exc


def list_strategies(repo: Repo) -> dict[str, Any]:
    return ask(repo, {"op": "list"}, timeout=MARGIN)


def describe(repo: Repo, name: str) -> dict[str, Any]:
    return ask(repo, {"op": "describe", "name": name}, timeout=MARGIN)


def run(repo: Repo, name: str, params: dict[str, Any], by: str) -> dict[str, Any]:
    return ask(repo, {"op": "run", "name": name, "params": params, "by": by})
