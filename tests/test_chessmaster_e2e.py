"""Each real AI CLI as the chessmaster, set up with only what `fracta init` wrote plus the README's
one-time step: it lists and spawns through `fracta serve`, exits, and the control plane and the
agent it spawned live on with the provider variables of the user's shell.

The CLIs run under the scripted model (tests/ai_clis.py) with their own HOME. The user's own
provider set-up (the model's URL) lives where a user keeps it (environment, ~/.codex/config.toml,
OPENCODE_CONFIG); the project holds only what `fracta init` wrote. The agent is a `command` that
records its pid and environment, then waits for a file the test creates once the CLI has exited:
its `done` status (exit 0) proves it outlived the CLI.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ai_clis import (
    CLAUDE_OFFLINE,
    CODEX_KEY_VAR,
    Invocation,
    closed_port,
    isolated_env,
    opencode_config,
    opencode_env,
    require_cli,
)
from conftest import CliRunner
from lifecycle_helpers import cleanup, use_free_port, wait_for
from scripted_model import Agent, ScriptedModel, call, say

from fracta import agents, processes
from fracta import repo as repo_mod
from fracta.control import daemon

pytestmark = pytest.mark.timeout(300)

SECRET = "sk-ant-from-the-users-shell"  # a provider variable the user's shell has
AGENT_SCRIPT = """\
import json, os, sys, time
from pathlib import Path

report, go = Path(sys.argv[1]), Path(sys.argv[2])
seen = {"pid": os.getpid(), "key": os.environ.get("ANTHROPIC_API_KEY"), "path": os.environ.get("PATH", "")}
report.write_text(json.dumps(seen))
deadline = time.monotonic() + 240
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.05)
print("outlived the chessmaster" if go.exists() else "never told to finish")
sys.exit(0 if go.exists() else 3)
"""


@pytest.fixture
def llm() -> Iterator[ScriptedModel]:
    with ScriptedModel() as model:
        yield model


def user_env(run_dir: Path) -> dict[str, str]:
    """The user's shell: an isolated HOME, fracta on PATH, and a provider variable."""
    env = isolated_env(run_dir)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["ANTHROPIC_API_KEY"] = SECRET
    return env


def claude_chessmaster(model: Agent, prompt: str, repo: Path, env: dict[str, str]) -> Invocation:
    """The README's recipe: `MCP_CONNECTION_NONBLOCKING=0 claude -p` in the project, fracta's tools
    allowed by server name. The model's URL is the user's own setting (environment)."""
    argv = [str(require_cli("claude")), "-p", prompt, "--output-format", "stream-json", "--verbose"]
    argv += ["--allowedTools", "mcp__fracta"]
    extra = {"ANTHROPIC_BASE_URL": model.base_url, **CLAUDE_OFFLINE, "MCP_CONNECTION_NONBLOCKING": "0"}
    return Invocation(argv, {**env, **extra}, repo)


def codex_chessmaster(model: Agent, prompt: str, repo: Path, env: dict[str, str]) -> Invocation:
    """The README's recipe: `codex exec --trust` once in the project (then plain `codex exec`).
    The model provider is the user's own, in ~/.codex/config.toml."""
    home = Path(env["HOME"]) / ".codex"
    home.mkdir(parents=True, exist_ok=True)
    config = home / "config.toml"
    url = f"base_url = {json.dumps(model.openai_base_url)}"
    if config.exists():  # a later run: the same file (it now records the trust), another script
        config.write_text(re.sub(r"^base_url = .*$", lambda _: url, config.read_text(), flags=re.M))
    else:
        config.write_text(
            textwrap.dedent(f"""\
            model = "fake-model"
            model_provider = "fake"
            check_for_update_on_startup = false
            [features]
            plugins = false
            [analytics]
            enabled = false
            [model_providers.fake]
            name = "fake"
            {url}
            env_key = "{CODEX_KEY_VAR}"
            wire_api = "responses"
            """)
        )
    trust = [] if (home / "trusted").exists() else ["--trust"]  # the one-time step, on the first run
    (home / "trusted").touch()
    argv = [str(require_cli("codex")), "exec", *trust, "--json", prompt]
    return Invocation(argv, {**env, CODEX_KEY_VAR: "sk-codex-test"}, repo)


def opencode_chessmaster(model: Agent, prompt: str, repo: Path, env: dict[str, str]) -> Invocation:
    """`opencode run` in the project; the model provider is the user's own (OPENCODE_CONFIG)."""
    config = Path(env["HOME"]) / "opencode-user.json"
    config.write_text(json.dumps(opencode_config(model, [])))
    argv = [str(require_cli("opencode")), "run", "--format", "json", prompt]
    return Invocation(argv, {**env, **opencode_env(config, closed_port())}, repo)


CHESSMASTERS = {"claude": claude_chessmaster, "codex": codex_chessmaster, "opencode": opencode_chessmaster}


def run_cli(invocation: Invocation) -> subprocess.CompletedProcess[str]:
    """Run the CLI to its end, as from a shell in the project (PWD is the project: OpenCode reads it)."""
    return subprocess.run(
        invocation.argv,
        env={**invocation.env, "PWD": str(invocation.cwd)},
        cwd=invocation.cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=240,
    )


def explain(r: repo_mod.Repo, model: Agent, done: subprocess.CompletedProcess[str] | None = None) -> str:
    log = r.logs_dir / "control.log"
    parts = [
        f"tool results: {model.tool_results()}",
        f"control log: {log.read_text()[-2000:] if log.exists() else '(none)'}",
    ]
    if done is not None:
        parts += [f"cli stdout: {done.stdout[-3000:]}", f"cli stderr: {done.stderr[-3000:]}"]
    return "\n".join(parts)


@pytest.mark.parametrize("cli_name", ["claude", "codex", "opencode"])
def test_each_cli_as_chessmaster_spawns_an_agent_that_outlives_it_with_the_users_provider_variables(
    initialized: repo_mod.Repo, llm: ScriptedModel, cli: CliRunner, tmp_path: Path, cli_name: str
) -> None:
    r = initialized
    use_free_port(r)
    env = user_env(tmp_path / "user")
    script = tmp_path / "agent.py"
    script.write_text(AGENT_SCRIPT)
    report, go = tmp_path / "agent.json", tmp_path / "go"
    command = [sys.executable, str(script), str(report), str(go)]
    model = llm.agent(
        "chessmaster",
        [
            call("fracta_list"),
            call("fracta_spawn", name="sleeper", runtime="command", args=command),
            say("FINAL"),
        ],
    )
    with cleanup(r):
        done = run_cli(CHESSMASTERS[cli_name](model, "List the agents, then spawn sleeper.", r.root, env))
        why = explain(r, model, done)
        assert llm.errors == [], why
        listed, spawned = model.tool_results()
        assert not listed.is_error and not spawned.is_error, why
        info = daemon.read_info(r)
        assert info is not None, why
        started = json.loads(r.control_path.read_text())["pid_start"]
        wait_for("the agent to report", report.exists, explain=lambda: explain(r, model, done))
        seen: dict[str, Any] = json.loads(report.read_text())
        # The CLI has exited (and OpenCode has signalled every descendant of its servers):
        # the control plane and the agent are still there.
        assert processes.alive(info.pid, started), why
        agent = agents.load(r, "sleeper")
        assert agent.status == agents.Status.RUNNING, why
        assert agent.pid and processes.alive(agent.pid, agent.pid_start), why  # its runner
        assert processes.alive(seen["pid"], None), why  # and the command under it
        # The agent got the provider variable of the user's shell, whichever CLI started fracta.
        assert seen["key"] == SECRET, why
        for entry in seen["path"].split(os.pathsep):
            assert os.path.isdir(entry), (entry, seen["path"])
        # A later run (for Codex: without --trust) finds the same control plane and the agent.
        again = llm.agent("again", [call("fracta_list"), say("FINAL")])
        second = run_cli(CHESSMASTERS[cli_name](again, "List the agents.", r.root, env))
        [listed_again] = again.tool_results()
        assert not listed_again.is_error, explain(r, again, second)
        listing = json.loads(listed_again.text[listed_again.text.index("{") :])  # Codex prefixes a wall time
        assert [(a["name"], a["status"]) for a in listing["agents"]] == [("sleeper", "running")]
        go.touch()
        wait_for("the agent to finish", lambda: agents.load(r, "sleeper").status != agents.Status.RUNNING)
        finished = agents.load(r, "sleeper")
        assert (finished.status, finished.exit_code) == (agents.Status.DONE, 0), why
        assert daemon.read_info(r) == info  # the same control plane served it to the end
        status = cli("status", env={"PATH": env["PATH"]})
        assert status.returncode == 0 and str(info.pid) in status.stdout, status.stdout


ALLOW_LIST = ("HOME", "PATH", "LANG", "SHELL", "TERM", "TMPDIR")  # what Codex passes an MCP server


def test_a_control_plane_started_with_a_stripped_environment_names_what_a_spawn_misses(
    initialized: repo_mod.Repo, cli: CliRunner, tmp_path: Path
) -> None:
    r = initialized
    use_free_port(r)
    text = r.config_path.read_text()
    needs = {"command": {"env": {"ANTHROPIC_API_KEY": "${ANTHROPIC_API_KEY}"}}}  # a spawn needs it
    r.config_path.write_text(text.replace("agent_runtimes: {}", f"agent_runtimes: {json.dumps(needs)}"))
    shell = user_env(tmp_path / "user")
    gone = tmp_path / "codex-home" / "tmp" / "arg0" / "codex-arg0AbC123"  # Codex's session folder
    gone.mkdir(parents=True)
    stripped = {k: shell[k] for k in ALLOW_LIST if k in shell}
    stripped["PATH"] = f"{gone}{os.pathsep}{tmp_path / 'no-such-folder'}{os.pathsep}{shell['PATH']}"
    script = tmp_path / "agent.py"
    script.write_text(AGENT_SCRIPT)
    report, go = tmp_path / "agent.json", tmp_path / "go"
    with cleanup(r):
        started = subprocess.run(
            [sys.executable, "-m", "fracta", "up"], env=stripped, cwd=r.root, capture_output=True, text=True
        )
        assert started.returncode == 0, started.stderr
        recorded = json.loads(r.control_path.read_text())["environment"]
        assert "ANTHROPIC_API_KEY" not in recorded["names"] and "PATH" in recorded["names"]
        assert str(gone) not in recorded["path"] and str(tmp_path / "no-such-folder") not in recorded["path"]

        # From the user's shell, which has the variable: the spawn fails, naming it and the ways out.
        refused = cli("spawn", "sleeper", "--", sys.executable, str(script), str(report), str(go), env=shell)
        assert refused.returncode != 0
        assert "ANTHROPIC_API_KEY" in refused.stderr and "the control plane does not have" in refused.stderr
        assert "env_vars" in refused.stderr and "fracta down" in refused.stderr
        assert not agents.exists(r, "sleeper")  # nothing was left behind

        # Restarted from the user's shell, the control plane hands the agent the variable; a PATH
        # folder that vanished after it started is left out of the agent's PATH.
        transient = tmp_path / "transient-bin"
        transient.mkdir()
        shell["PATH"] = f"{transient}{os.pathsep}{shell['PATH']}"
        assert cli("down", env=shell).returncode == 0
        assert cli("up", env=shell).returncode == 0
        assert str(transient) in json.loads(r.control_path.read_text())["environment"]["path"]
        transient.rmdir()
        spawned = cli("spawn", "sleeper", "--", sys.executable, str(script), str(report), str(go), env=shell)
        assert spawned.returncode == 0, spawned.stderr
        wait_for("the agent to report", report.exists)
        seen = json.loads(report.read_text())
        assert seen["key"] == SECRET
        assert str(transient) not in seen["path"].split(os.pathsep) and seen["path"]
        go.touch()
        wait_for("the agent to finish", lambda: agents.load(r, "sleeper").status == agents.Status.DONE)
