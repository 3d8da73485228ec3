"""A standalone `fracta gateway` (Compose, Kubernetes: no control plane beside it) serves
strategy_run too: it starts a strategy runner, or uses the one already serving the repository."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from lifecycle_helpers import use_free_port, wait_for
from test_gateway import Mcp, fr

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
    return f"""
mcp_servers:
  git:
    command: {PY}
    args: [-m, mcp_server_git, --repository, {json.dumps(str(root))}]
strategies:
  bindings:
    status:
      status: {{server: git, tool: git_status, arguments: {{repo_path: {json.dumps(str(root))}}}}}
"""


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
    second = None
    try:
        found = Mcp(first_url, boss).data("strategy_run", {"name": "status"})["findings"]["read"]
        assert "untracked.txt" in found
        runner = sidecar.serving(fr)
        assert runner is not None

        second, second_url = start_gateway(fr, "127.0.0.1")  # finds that runner and leaves it alone
        assert Mcp(second_url, boss).data("strategy_run", {"name": "status"})["findings"]["read"] == found
        assert sidecar.serving(fr) == runner
        assert stop(second) == 0
        second = None
        assert sidecar.serving(fr) == runner
    finally:
        if second is not None:
            stop(second)
        assert stop(first) == 0
    wait_for("the first gateway's runner to stop with it", lambda: not processes.alive(runner, None))
    assert sidecar.serving(fr) is None
