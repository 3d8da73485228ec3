"""Strategies end to end: a real strategy runner beside a real control plane, the real
mcp-server-git proxied by the gateway, a real embedded FalkorDB, the official MCP client with
agents' tokens, and `fracta strategy` run from agents' worktrees."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import CliRunner, git
from lifecycle_helpers import cleanup, use_free_port, wait_for
from test_gateway import Mcp, fr

from fracta import agents, processes, project, workspaces
from fracta import repo as repo_mod
from fracta.control import daemon
from fracta.strategies import sidecar

__all__ = ["fr"]

PY = sys.executable

NOOP = """
from fracta.strategies import Strategy

strategy = Strategy("noop", "Does nothing.")


@strategy.step
async def nothing(ctx):
    return {"ok": True, "by": ctx.caller}
"""

FAILING = """
from fracta.strategies import Strategy

strategy = Strategy("failing", "A second step that raises.")


@strategy.step
async def first(ctx):
    return {"found": 41}


@strategy.step
async def second(ctx, first):
    raise RuntimeError("the data was not what I expected")


@strategy.step
async def third(ctx, second):
    return "never"
"""

SLOW = """
import asyncio
from pathlib import Path

from fracta.strategies import Strategy

strategy = Strategy("slow", "A step past its timeout.")


@strategy.step
async def quick(ctx):
    return "done"


@strategy.step(timeout=0.5)
async def stuck(ctx):
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        Path(ctx.root, "slow-cancelled").write_text("yes")
        raise
"""

SPINNING = """
import os
import subprocess
import time
from pathlib import Path

from fracta.strategies import Strategy

strategy = Strategy("spinning", "A plain step past its timeout, and the process it started.")


@strategy.step
def first(ctx):
    return {"pid": os.getpid(), "caller": ctx.caller}


@strategy.step(timeout=10)  # room for a Python process to start on a loaded machine
def spin(ctx, first):
    child = subprocess.Popen(["sleep", "3600"])
    Path(ctx.root, "spin.pids").write_text(f"{os.getpid()} {child.pid}")
    while True:
        time.sleep(0.01)
"""

CYCLE = """
from fracta.strategies import Strategy

strategy = Strategy("cycle", "Steps that wait on each other.")


@strategy.step
async def start(ctx):
    return 1


@strategy.step
async def a(ctx, start, c):
    return 1


@strategy.step
async def b(ctx, a):
    return 2


@strategy.step
async def c(ctx, b):
    return 3
"""

BROKEN = """
from fracta.strategies import Strategy

strategy = Strategy("broken", "Does not import.")
value = 1 / 0
"""

UNBOUND = """
from pathlib import Path

from fracta.strategies import Data, Strategy

strategy = Strategy(
    "unbound",
    "Needs data nothing feeds.",
    requires={
        "log": Data("the git log", "text"),
        "status": Data("git status", "text"),
        "agents": Data("the agents", "json"),
    },
)


@strategy.step
async def read(ctx):
    Path(ctx.root, "unbound-ran").write_text("yes")
    return await ctx.fetch("log")
"""

TEST_STRATEGIES = {
    "noop": NOOP,
    "failing": FAILING,
    "slow": SLOW,
    "spinning": SPINNING,
    "cycle": CYCLE,
    "broken": BROKEN,
    "unbound": UNBOUND,
}


def git_server(root: Path) -> str:
    """fracta.yaml's `mcp_servers` with the real mcp-server-git serving `root`."""
    return f"""
mcp_servers:
  git:
    command: {PY}
    args: [-m, mcp_server_git, --repository, {json.dumps(str(root))}]
"""


def config(root: Path) -> str:
    return (
        git_server(root)
        + """strategies:
  bindings:
    conflict_radar:
      diff: {server: git, tool: git_diff, arguments: {context_lines: 0}}
    unbound:
      status: {server: git, tool: git_status, arguments: {repo_path: "${FRACTA_TEST_UNSET_REPO}"}}
      agents: {server: git, tool: git_nothing}
"""
    )


@pytest.fixture
def served(fr: repo_mod.Repo, cli: CliRunner) -> Any:
    """The control plane up, with the example strategies and the tests' own in strategies/."""
    text = fr.config_path.read_text()
    start = text.find("\nstrategies:\n")  # the template's own section: config() gives the tests' one
    if start >= 0:
        end = text.find("\n\n", start + 1)
        fr.config_path.write_text(text[:start] + text[end if end >= 0 else len(text) :])
    use_free_port(fr, config(fr.root))
    init = cli("strategy", "init")
    assert init.returncode == 0, init.stderr
    assert "conflict_radar.py" in init.stdout and "who_waits.py" in init.stdout
    for name, text in TEST_STRATEGIES.items():
        (fr.root / "strategies" / f"{name}.py").write_text(text)
    with cleanup(fr):
        up = cli("up")
        assert up.returncode == 0, up.stderr
        info = daemon.read_info(fr)
        assert info is not None and info.gateway_url is not None
        yield info.gateway_url


def agent(fr: repo_mod.Repo, url: str, name: str) -> Mcp:
    return Mcp(url, project.agent_token(fr, name))


def make_agent(r: repo_mod.Repo, name: str) -> Path:
    ws = workspaces.create_git(r, name)
    agents.create(r, agents.new(name, "command", agents.Status.IDLE, **ws.record_fields()))
    return Path(ws.path)


def commit(cwd: Path, name: str, text: str) -> None:
    (cwd / name).write_text(text)
    git(cwd, "add", name)
    git(cwd, "commit", "-q", "-m", f"edit {name}")


def error_of(mcp: Mcp, tool: str, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    result = mcp.call(tool, args)
    assert result.is_error and result.structured_content is not None
    return result.content[0].text, result.structured_content["error"]  # type: ignore[union-attr]


def test_the_conflict_radar_finds_two_agents_conflicting_edits_the_same_for_every_caller(
    fr: repo_mod.Repo, cli: CliRunner, served: str
) -> None:
    commit(fr.root, "shared.txt", "line one\n")  # the base both branch from
    alpha_ws, beta_ws, gamma_ws = (make_agent(fr, n) for n in ("alpha", "beta", "gamma"))
    commit(alpha_ws, "shared.txt", "alpha's line\n")
    commit(beta_ws, "shared.txt", "beta's line\n")
    commit(beta_ws, "beta_only.txt", "b\n")
    commit(gamma_ws, "gamma.txt", "g\n")
    # Finished agents' unmerged branches count; a lost one's with no worktree or no branch is no error.
    lost_ws, gone_ws, merged_ws = (make_agent(fr, n) for n in ("lost", "gone", "merged"))
    commit(lost_ws, "gamma.txt", "lost's own\n")  # both add gamma.txt: gamma and lost conflict
    commit(merged_ws, "merged.txt", "m\n")
    git(fr.root, "merge", "-q", "--ff-only", agents.load(fr, "merged").branch or "")
    for name, ws in (("lost", lost_ws), ("gone", gone_ws)):
        git(fr.root, "worktree", "remove", "--force", str(ws))
        agents.update(fr, name, status=agents.Status.LOST)
    git(fr.root, "branch", "-D", agents.load(fr, "gone").branch or "")
    agents.update(fr, "merged", status=agents.Status.DONE)
    alpha, beta = agent(fr, served, "alpha"), agent(fr, served, "beta")

    listed = alpha.data("strategy_list")["strategies"]
    assert {s["name"] for s in listed} >= {"conflict_radar", "who_waits", "noop"}
    described = alpha.data("strategy_describe", {"name": "conflict_radar"})
    sources = {c["entry"]: c["source"] for c in described["contract"]}
    assert sources["diff"] == {"server": "git", "tool": "git_diff", "arguments": {"context_lines": 0}}
    assert sources["dry_merge"]["server"] == "fracta" and described["findings"] == ["report"]

    first = alpha.data("strategy_run", {"name": "conflict_radar", "params": {"base": "main"}})
    report = first["findings"]["report"]
    assert report["changes"] == {
        "alpha": ["shared.txt"],
        "beta": ["beta_only.txt", "shared.txt"],
        "gamma": ["gamma.txt"],
    }
    assert report["conflicts"] == [
        {"agent": "alpha", "with": "beta", "with_agent": True, "files": ["shared.txt"]},
        {"agent": "gamma", "with": "lost", "with_agent": True, "files": ["gamma.txt"]},
    ]
    skipped = {s["agent"]: (s["status"], s["reason"]) for s in report["skipped"]}
    assert skipped.keys() == {"gone", "lost", "merged"}
    assert skipped["gone"][0] == "lost" and "is gone" in skipped["gone"][1]
    assert skipped["lost"] == ("lost", "its worktree is gone: its changes are not listed")
    assert skipped["merged"][0] == "done" and "merged into main already" in skipped["merged"][1]
    assert first["by"] == "alpha" and first["graph_writes"] == 1

    again = beta.data("strategy_run", {"name": "conflict_radar", "params": {}})
    assert again["findings"] == first["findings"] and again["by"] == "beta"
    from_worktree = cli("strategy", "run", "conflict_radar", "--json", cwd=gamma_ws)
    assert from_worktree.returncode == 0, from_worktree.stderr
    assert json.loads(from_worktree.stdout)["findings"] == first["findings"]

    rows = alpha.data(
        "graph_query",
        {
            "query": "MATCH (a:Agent)-[r:CONFLICTS_WITH]->(b:Agent) "
            "RETURN a.key AS a, b.key AS b, r.files AS files, r._by AS by ORDER BY a"
        },
    )["rows"]
    assert rows == [  # the last run's
        {"a": "alpha", "b": "beta", "files": ["shared.txt"], "by": "chessmaster"},
        {"a": "gamma", "b": "lost", "files": ["gamma.txt"], "by": "chessmaster"},
    ]
    changes = alpha.data(
        "graph_query", {"query": "MATCH (:Agent {key: 'beta'})-[r:CHANGES]->(f) RETURN f.key AS f ORDER BY f"}
    )
    assert [r["f"] for r in changes["rows"]] == ["beta_only.txt", "shared.txt"]

    commit(fr.root, "shared.txt", "main moved on\n")  # now each agent conflicts with main as well
    moved = alpha.data("strategy_run", {"name": "conflict_radar", "params": {"graph": False}})
    found = {(c["agent"], c["with"]) for c in moved["findings"]["report"]["conflicts"]}
    assert found == {("alpha", "beta"), ("gamma", "lost"), ("alpha", "main"), ("beta", "main")}
    assert moved["graph_writes"] == 0


def test_who_waits_reads_the_event_log(fr: repo_mod.Repo, cli: CliRunner, served: str) -> None:
    for name in ("alpha", "beta"):
        assert cli("join", name).returncode == 0
    alpha = agent(fr, served, "alpha")
    alpha.data("fracta_send", {"to": "beta", "message": "I need your API before I can go on"})
    found = alpha.data("strategy_run", {"name": "who_waits", "params": {"unread_after": 0}})["findings"]["report"]
    assert [(w["agent"], w["waits_on"]) for w in found["waiting"]] == [("alpha", "beta")]
    assert [(m["from"], m["to"]) for m in found["unread"]] == [("alpha", "beta")]
    later = alpha.data("strategy_run", {"name": "who_waits", "params": {"unread_after": 3600}})
    assert later["findings"]["report"]["unread"] == []


def test_each_failure_is_a_clear_error(fr: repo_mod.Repo, cli: CliRunner, served: str) -> None:
    assert cli("join", "alpha").returncode == 0
    alpha = agent(fr, served, "alpha")

    text, error = error_of(alpha, "strategy_run", {"name": "unbound"})
    assert error["type"] == "ContractUnsatisfied" and "nothing was run" in text
    missing = {m["entry"]: m["reason"] for m in error["details"]["missing"]}
    assert missing["log"] == "no binding in fracta.yaml"
    assert "FRACTA_TEST_UNSET_REPO" in missing["status"]
    assert "has no tool 'git_nothing'" in missing["agents"] and "git_status" in missing["agents"]
    assert not (fr.root / "unbound-ran").exists()

    text, error = error_of(alpha, "strategy_run", {"name": "failing"})
    assert "step 'second' failed: RuntimeError: the data was not what I expected" in text
    assert error["details"]["step"] == "second" and error["details"]["completed"] == {"first": {"found": 41}}
    assert error["details"]["not_started"] == ["third"]

    text, error = error_of(alpha, "strategy_run", {"name": "slow"})
    assert "step 'stuck' failed: ran past stuck's timeout of 0.5s and was cancelled" in text
    assert error["details"]["timed_out"] is True and error["details"]["completed"] == {"quick": "done"}
    assert (fr.root / "slow-cancelled").read_text() == "yes"  # cancelled, not left running

    text, error = error_of(alpha, "strategy_run", {"name": "spinning"})
    assert "step 'spin' failed: ran past spin's timeout of 10s and was cancelled" in text
    first = error["details"]["completed"]["first"]
    assert first["caller"] == "alpha" and first["pid"] != sidecar.serving(fr)  # a process of its own
    pids = (fr.root / "spin.pids").read_text().split()  # written well within 10s
    for pid in pids:  # stopped, with what it started: not left spinning in a thread
        wait_for(f"the timed-out step's process {pid} to be gone", lambda p=int(pid): not processes.alive(p, None))

    text, error = error_of(alpha, "strategy_run", {"name": "cycle"})
    assert error["type"] == "StrategyInvalid" and "form a cycle (each needs the next): a -> c -> b -> a" in text

    text, error = error_of(alpha, "strategy_describe", {"name": "broken"})
    assert "strategy file broken.py does not import (line 5): ZeroDivisionError: division by zero" in text
    listed = {s["name"]: s["error"] for s in alpha.data("strategy_list")["strategies"]}
    assert "does not import" in listed["broken"] and listed["noop"] is None

    text, error = error_of(alpha, "strategy_run", {"name": "who_waits", "params": {"unread_after": "soon"}})
    assert error["type"] == "InvalidInput" and "'unread_after' of who_waits" in text and "got str" in text
    text, error = error_of(alpha, "strategy_run", {"name": "nope"})
    assert error["type"] == "StrategyNotFound" and "conflict_radar" in text

    for args, code, words in [
        (("run", "unbound"), 2, "no binding in fracta.yaml"),
        (("run", "failing"), 1, "step 'second' failed"),
        (("describe", "cycle"), 2, "form a cycle"),
        (("run", "who_waits", "-p", 'unread_after="x"'), 2, "unread_after"),
        (("run", "nope"), 3, "no strategy named 'nope'"),
    ]:
        result = cli("strategy", *args)
        assert result.returncode == code, (args, result.stderr)
        assert words in result.stderr


def test_without_a_runner_the_tools_say_so(fr: repo_mod.Repo, cli: CliRunner) -> None:
    result = cli("strategy", "list")
    assert result.returncode == 8 and "the strategy runner is not running" in result.stderr
