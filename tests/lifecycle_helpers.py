"""Helpers for lifecycle tests: a control plane on a free port, waiting for files and statuses."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from conftest import CliRunner

from fracta import agents, processes, runner
from fracta import repo as repo_mod
from fracta.control import daemon


def wait_for(
    what: str, check: Callable[[], object], timeout: float = 60.0, explain: Callable[[], str] | None = None
) -> object:
    """Poll `check` until it returns something truthy (a liveness bound, not a timing assertion).
    `explain` adds what helps to understand a timeout (a log, say) to the failure."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}" + (f"\n{explain()}" if explain else ""))


def status(r: repo_mod.Repo, name: str) -> str:
    return agents.load(r, name).status.value


def wait_status(r: repo_mod.Repo, name: str, *wanted: str, timeout: float = 120.0) -> None:
    """Wait for one of `wanted`; a timeout says the status reached and the agent's log's tail
    (the bound is generous: the suite runs many control planes at once on two cores)."""

    def explain() -> str:
        out = r.state / "agents" / name / runner.OUTPUT_FILE
        tail = out.read_text(errors="replace")[-2000:] if out.exists() else "(no output yet)"
        return f"{name} is {status(r, name)}; its output ends:\n{tail}"

    wait_for(f"{name} to be {wanted}", lambda: status(r, name) in wanted, timeout, explain)


def use_free_port(r: repo_mod.Repo, extra: str = "") -> None:
    """Free ports are the default (port: 0); add `extra` to fracta.yaml."""
    r.config_path.write_text(r.config_path.read_text() + extra)


@contextlib.contextmanager
def cleanup(r: repo_mod.Repo) -> Iterator[None]:
    """Stop the control plane and every agent process group the test left behind."""
    try:
        yield
    finally:
        daemon.down(r)
        found, _ = agents.list_all(r)
        for a in found:
            if a.pid:
                processes.terminate_group(a.pid, a.pid_start, 1.0)


def spawn(cli: CliRunner, name: str, *command: str, extra: tuple[str, ...] = ()) -> None:
    result = cli("spawn", name, *extra, "--", *command)
    assert result.returncode == 0, result.stderr


def output_lines(r: repo_mod.Repo, name: str) -> list[str]:
    """The lines an agent printed (the runner's mark at the start of each run left out)."""
    path = r.agent_dir(name) / "output.jsonl"
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return [rec["line"] for rec in records if rec.get("event") != runner.RUN_EVENT]


def kill_control_plane_hard(r: repo_mod.Repo) -> int:
    info = daemon.read_info(r)
    assert info is not None
    os.kill(info.pid, signal.SIGKILL)
    wait_for("the control plane to die", lambda: daemon.read_info(r) is None)
    return info.pid


def script(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text("set -e\n" + body)
    return path
