"""A standalone `fracta gateway` (Compose, Kubernetes: no control plane beside it) serves
strategy_run too: it starts a strategy runner, or uses the one already serving the repository."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from lifecycle_helpers import use_free_port, wait_for
from test_gateway import Mcp, fr
from test_strategies import git_server

from fracta import processes
from fracta import repo as repo_mod
from fracta.strategies import sidecar

__all__ = ["fr"]

PY = sys.executable

STATUS = """
from fracta.strategies import Data, Strategy

strategy = Strategy("status", "git status through the gateway.", requires={"status": Data("git status", "text")})


@strategy.step
async def read(ctx):
    return await ctx.fetch("status")
"""


def config(root: Path) -> str:
    return (
        git_server(root)
        + f"""strategies:
  bindings:
    status:
      status: {{server: git, tool: git_status, arguments: {{repo_path: {json.dumps(str(root))}}}}}
"""
    )


def start_gateway(r: repo_mod.Repo, host: str) -> tuple[subprocess.Popen[str], str]:
    """`fracta gateway` on host, port 0; its loopback MCP URL once it listens."""
    proc = subprocess.Popen(
        [PY, "-m", "fracta", "gateway", "--host", host, "--port", "0"], cwd=r.root, stderr=subprocess.PIPE, text=True
    )
    said: list[str] = []

    def listening() -> str | None:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        said.append(line)
        assert line or proc.poll() is None, f"the gateway ended before it listened: {''.join(said)}"
        return line if "gateway listening" in line else None

    try:
        line = str(wait_for("the gateway to listen", listening))
    except BaseException:
        stop(proc)
        raise
    port = int(line.split("url=http://")[1].split("/")[0].rsplit(":", 1)[1])
    return proc, f"http://127.0.0.1:{port}/mcp"


def new_runner(r: repo_mod.Repo, old: int) -> int:
    """Wait until a runner other than `old` serves `r`; its pid."""
    seen: list[int] = []

    def other() -> bool:
        pid = sidecar.serving(r)
        if pid is not None and pid != old:
            seen.append(pid)
        return bool(seen)

    wait_for(f"a runner in place of {old}", other)
    return seen[-1]


def stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=60)
    assert proc.stderr is not None
    proc.stderr.close()
    return code


def test_a_standalone_gateway_starts_a_runner_or_uses_the_one_serving_and_stops_only_its_own(
    fr: repo_mod.Repo,
) -> None:
    text = fr.config_path.read_text()
    start = text.find("\nstrategies:\n")  # the template's own section: config() gives this test's one
    if start >= 0:
        end = text.find("\n\n", start + 1)
        fr.config_path.write_text(text[:start] + text[end if end >= 0 else len(text) :])
    use_free_port(fr, config(fr.root))
    text = fr.config_path.read_text()
    fr.config_path.write_text(text.replace("  allowed_hosts: []", '  allowed_hosts: ["gateway.example:*"]', 1))
    (fr.root / "strategies").mkdir()
    (fr.root / "strategies" / "status.py").write_text(STATUS)
    (fr.root / "untracked.txt").write_text("for git status to see\n")
    boss = fr.token_path.read_text().strip()

    # On every address, as in a container: its runner reaches it back on loopback, a Host header
    # gateway.allowed_hosts does not list but a rebinding page could not send.
    first, first_url = start_gateway(fr, "0.0.0.0")
    second = third = None
    try:
        found = Mcp(first_url, boss).data("strategy_run", {"name": "status"})["findings"]["read"]
        assert "untracked.txt" in found
        runner = sidecar.serving(fr)
        assert runner is not None

        second, second_url = start_gateway(fr, "127.0.0.1")  # finds that runner and leaves it alone
        third, _ = start_gateway(fr, "127.0.0.1")
        assert Mcp(second_url, boss).data("strategy_run", {"name": "status"})["findings"]["read"] == found
        assert sidecar.serving(fr) == runner
        assert stop(third) == 0
        third = None
        assert sidecar.serving(fr) == runner

        # The first gateway stops, and its runner with it: the second starts one of its own.
        assert stop(first) == 0
        first = None
        wait_for("the first gateway's runner to stop with it", lambda: not processes.alive(runner, None))
        replaced = new_runner(fr, runner)
        assert Mcp(second_url, boss).data("strategy_run", {"name": "status"})["findings"]["read"] == found

        # Its own runner SIGKILLed: it starts another.
        os.kill(int(str(replaced)), signal.SIGKILL)
        again = wait_for(
            "a runner again", lambda: (sidecar.serving(fr) or 0) not in (0, replaced) and sidecar.serving(fr)
        )
        assert Mcp(second_url, boss).data("strategy_run", {"name": "status"})["findings"]["read"] == found
        assert stop(second) == 0
        second = None
    finally:
        for proc in (first, second, third):
            if proc is not None:
                stop(proc)
    wait_for("the second gateway's runner to stop with it", lambda: not processes.alive(again, None))
    assert sidecar.serving(fr) is None
