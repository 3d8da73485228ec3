"""The real AI CLIs (Claude Code, Codex, OpenCode) under the scripted model: where they are, the
environment and config files that keep them offline, and fixtures.

Import from test files: `from ai_clis import ...` (fixtures too: `from ai_clis import claude_bin,
scripted_model`). See docs/testing-ai-clis.md.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from scripted_model import Agent, ScriptedModel

NOT_INSTALLED = "AI CLIs not installed: run scripts/setup-ai-clis"
# Read when this module is imported, before conftest's autouse fixture strips FRACTA_* variables.
CLI_CACHE = Path(os.environ.get("FRACTA_CLI_CACHE") or Path.home() / ".cache" / "fracta-ai-clis")
CLI_BIN = CLI_CACHE / "current" / "node_modules" / ".bin"
RUNTIMES = ("claude", "codex", "opencode")

# Variables that would point a CLI at the host's real provider, account or config.
_HOST_PREFIXES = ("ANTHROPIC_", "CLAUDE_", "OPENAI_", "CODEX_", "OPENCODE_", "AWS_", "AZURE_", "GOOGLE_", "GEMINI_")
_HOST_VARS = {"XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR"}

CLAUDE_OFFLINE = {
    "DISABLE_TELEMETRY": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_ERROR_REPORTING": "1",
}
# Claude Code 2.1 connects MCP servers in the background and sends its first model request without
# their tools (offering `WaitForMcpServers` instead); these make it wait, for up to a minute.
CLAUDE_WAIT_FOR_MCP = {"MCP_CONNECTION_NONBLOCKING": "0", "MCP_CONNECT_TIMEOUT_MS": "60000"}
OPENCODE_OFFLINE = {
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    "OPENCODE_DISABLE_MODELS_FETCH": "1",
    "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
    "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
    "OPENCODE_DISABLE_SHARE": "1",
}
CODEX_KEY_VAR = "FAKE_API_KEY"  # the env_key of the `fake` provider in codex_config_toml()


def cli_path(runtime: str) -> Path:
    """The installed binary of `runtime` ("claude", "codex" or "opencode"); it may not exist."""
    return CLI_BIN / runtime


def require_cli(runtime: str) -> Path:
    """The binary of `runtime`, or a loud skip (a failure under CI when npm is there to install it)."""
    path = cli_path(runtime)
    if os.access(path, os.X_OK):
        return path
    reason = f"{NOT_INSTALLED} ({path} is missing; FRACTA_CLI_CACHE={CLI_CACHE})"
    if os.environ.get("CI") and shutil.which("npm"):
        pytest.fail(f"{reason}; CI has npm, so scripts/setup-ai-clis should have installed it")
    pytest.skip(reason)


def closed_port() -> int:
    """A loopback port nothing listens on (for npm_config_registry: fetches fail at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def runtime_options(runtime: str, model: ScriptedModel) -> dict[str, Any]:
    """agents.agent_runtimes.<runtime> pointing the real CLI at agent {{agent}}'s script."""
    base = f"{model.url}/a/{{{{agent}}}}"
    if runtime == "claude":
        return {
            "binary": str(require_cli("claude")),
            # The model's URL by environment, as claude_by_hand() gives it: no --settings file.
            "env": {"ANTHROPIC_API_KEY": "sk-ant-test", "ANTHROPIC_BASE_URL": base, **CLAUDE_OFFLINE},
        }
    if runtime == "codex":
        provider = {"name": "fake", "base_url": base + "/v1", "env_key": CODEX_KEY_VAR, "wire_api": "responses"}
        return {
            "binary": str(require_cli("codex")),
            "model": "fake-model",
            "env": {CODEX_KEY_VAR: "sk-codex-test"},
            "config": {"model_provider": "fake", "model_providers": {"fake": provider}},
        }
    registry = f"http://127.0.0.1:{closed_port()}/"
    fake = {
        "npm": "@ai-sdk/openai-compatible",
        "options": {"baseURL": base + "/v1", "apiKey": "sk-opencode-test"},
        "models": {"fake-model": {"tool_call": True, "limit": {"context": 100000, "output": 4096}}},
    }
    return {
        "binary": str(require_cli("opencode")),
        "model": "fake/fake-model",
        "env": {**OPENCODE_OFFLINE, "npm_config_registry": registry, "NPM_CONFIG_REGISTRY": registry},
        "config": {"small_model": "fake/fake-model", "provider": {"fake": fake}},
    }


# --- MCP servers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class McpServer:
    """An MCP server to configure in a CLI: stdio (`command`) or streamable HTTP (`url`)."""

    name: str
    command: Sequence[str] = ()
    env: dict[str, str] = field(default_factory=dict)
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def time_mcp(name: str = "time") -> McpServer:
    """The real third-party `mcp-server-time` (PyPI, in the venv) over stdio; tools
    `get_current_time(timezone)` and `convert_time(...)`."""
    return McpServer(name, (sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"))


def claude_mcp_config(servers: Sequence[McpServer]) -> dict[str, Any]:
    """The `--mcp-config` document."""
    entries: dict[str, Any] = {}
    for s in servers:
        if s.url:
            entries[s.name] = {"type": "http", "url": s.url, "headers": s.headers}
        else:
            entries[s.name] = {"type": "stdio", "command": s.command[0], "args": list(s.command[1:]), "env": s.env}
    return {"mcpServers": entries}


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)  # strings, lists of strings, booleans and numbers read the same in TOML


def codex_config_toml(agent: Agent, servers: Sequence[McpServer], model: str = "fake-model") -> str:
    """`CODEX_HOME/config.toml` for `agent` with `servers`.

    `required = true` makes `codex exec` wait for the server before its first model request:
    without it Codex 0.169 sends that request at once, and a slow server's tools are missing.
    """
    lines = [
        f"model = {_toml(model)}",
        'model_provider = "fake"',
        'approval_policy = "never"',
        'sandbox_mode = "workspace-write"',
        "check_for_update_on_startup = false",
        "[features]",
        "plugins = false",  # otherwise it clones a plugins repository from the internet
        "[analytics]",
        "enabled = false",
        "[model_providers.fake]",
        'name = "fake"',
        f"base_url = {_toml(agent.openai_base_url)}",
        f"env_key = {_toml(CODEX_KEY_VAR)}",
        'wire_api = "responses"',
    ]
    for s in servers:
        lines.append(f"[mcp_servers.{s.name}]")
        if s.url:
            lines += [f"url = {_toml(s.url)}", f"http_headers = {_toml(s.headers)}"]
        else:
            lines += [f"command = {_toml(s.command[0])}", f"args = {_toml(list(s.command[1:]))}"]
            if s.env:
                lines.append(f"env = {_toml(s.env)}")
        lines += ['default_tools_approval_mode = "approve"', "required = true", "startup_timeout_sec = 60"]
    return "\n".join(lines) + "\n"


def opencode_config(agent: Agent, servers: Sequence[McpServer], api_key: str = "sk-opencode-test") -> dict[str, Any]:
    """The `OPENCODE_CONFIG` document for `agent` with `servers` (model `fake/fake-model`)."""
    mcp: dict[str, Any] = {}
    for s in servers:
        if s.url:
            mcp[s.name] = {"type": "remote", "url": s.url, "headers": s.headers}
        else:
            mcp[s.name] = {"type": "local", "command": list(s.command), "environment": s.env}
    model = {"tool_call": True, "limit": {"context": 100000, "output": 4096}}
    provider = {
        "npm": "@ai-sdk/openai-compatible",
        "options": {"baseURL": agent.openai_base_url, "apiKey": api_key},
        "models": {"fake-model": model},
    }
    return {
        "$schema": "https://opencode.ai/config.json",
        "model": "fake/fake-model",
        "small_model": "fake/fake-model",
        "autoupdate": False,
        "share": "disabled",
        "provider": {"fake": provider},
        "mcp": mcp,
    }


# --- environments --------------------------------------------------------------------------------


def isolated_env(run_dir: Path) -> dict[str, str]:
    """The test process's environment minus every provider/CLI variable, with its own HOME, TMPDIR
    and XDG folders under `run_dir` (created). Nothing of the host's accounts or configs leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_HOST_PREFIXES) and k not in _HOST_VARS}
    home, tmp = run_dir / "home", run_dir / "tmp"
    for folder in (home, tmp):
        folder.mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(home), TMPDIR=str(tmp))
    return env


def enter_isolated_env(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, bin_dir: Path | None = Path(sys.executable).parent
) -> dict[str, str]:
    """Make this test's whole environment `isolated_env(run_dir)`, with `bin_dir` (the venv's
    scripts: fracta, the MCP servers) first on PATH unless None; returns that environment."""
    env = isolated_env(run_dir)
    for key in list(os.environ):
        if key not in env:
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if bin_dir is not None:
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return env


def claude_env(agent: Agent, api_key: str | None = "sk-ant-test", auth_token: str | None = None) -> dict[str, str]:
    """Variables pointing Claude Code at `agent`, keeping it offline and making it wait for its MCP
    servers (add to an isolated env)."""
    env = {"ANTHROPIC_BASE_URL": agent.base_url, **CLAUDE_OFFLINE, **CLAUDE_WAIT_FOR_MCP}
    if api_key:
        env["ANTHROPIC_API_KEY"] = api_key  # reaches the model as `x-api-key`
    if auth_token:
        env["ANTHROPIC_AUTH_TOKEN"] = auth_token  # reaches the model as `Authorization: Bearer`
    return env


def codex_env(codex_home: Path, api_key: str = "sk-codex-test") -> dict[str, str]:
    """Variables for Codex with `codex_config_toml()` in `codex_home`."""
    return {"CODEX_HOME": str(codex_home), CODEX_KEY_VAR: api_key}


def opencode_env(config: Path, registry_port: int | None = None) -> dict[str, str]:
    """Variables for OpenCode with its config at `config`, offline (npm fetches hit a closed port)."""
    registry = f"http://127.0.0.1:{registry_port or closed_port()}/"
    return {
        "OPENCODE_CONFIG": str(config),
        **OPENCODE_OFFLINE,
        "npm_config_registry": registry,
        "NPM_CONFIG_REGISTRY": registry,
    }


# --- running a CLI by hand -----------------------------------------------------------------------


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: str
    stderr: str

    @property
    def events(self) -> list[dict[str, Any]]:
        """The JSON objects printed one a line on stdout (other lines are skipped)."""
        found = []
        for line in self.stdout.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                found.append(event)
        return found


@dataclass(frozen=True)
class Invocation:
    """A CLI run by hand: argv, complete environment and working directory."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path

    def run(self, timeout: float = 120.0) -> Finished:
        """Run to the end with stdin closed (Codex would otherwise read it into the prompt)."""
        done = subprocess.run(
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Finished(done.returncode, done.stdout, done.stderr)


def claude_by_hand(
    agent: Agent,
    prompt: str,
    cwd: Path,
    run_dir: Path,
    servers: Sequence[McpServer] = (),
    allowed_tools: Sequence[str] | None = None,
    api_key: str | None = "sk-ant-test",
    auth_token: str | None = None,
    env: dict[str, str] | None = None,
    extra: Sequence[str] = (),
) -> Invocation:
    """`claude -p PROMPT --output-format stream-json --verbose` against `agent`, with `servers`
    allowed (`--allowedTools mcp__<server>` each, unless `allowed_tools` is given). `extra` goes
    after the flags, e.g. `("--resume", SESSION_ID)`; `env` adds to the environment."""
    config = run_dir / "mcp.json"
    run_dir.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps(claude_mcp_config(servers)))
    tools = list(allowed_tools) if allowed_tools is not None else [f"mcp__{s.name}" for s in servers]
    argv = [str(require_cli("claude")), "-p", prompt, "--output-format", "stream-json", "--verbose"]
    argv += ["--mcp-config", str(config), "--strict-mcp-config"]
    if tools:
        argv += ["--allowedTools", *tools]
    return Invocation(
        [*argv, *extra], {**isolated_env(run_dir), **claude_env(agent, api_key, auth_token), **(env or {})}, cwd
    )


def codex_by_hand(
    agent: Agent,
    prompt: str,
    cwd: Path,
    run_dir: Path,
    servers: Sequence[McpServer] = (),
    env: dict[str, str] | None = None,
    extra: Sequence[str] = (),
) -> Invocation:
    """`codex exec --json --skip-git-repo-check PROMPT` against `agent` (CODEX_HOME in `run_dir`).
    `extra` goes right after `exec`, e.g. `("resume", SESSION_ID)`."""
    codex_home = run_dir / "codex-home"
    codex_home.mkdir(parents=True, exist_ok=True)
    (codex_home / "config.toml").write_text(codex_config_toml(agent, servers))
    argv = [str(require_cli("codex")), "exec", *extra, "--json", "--skip-git-repo-check", prompt]
    return Invocation(argv, {**isolated_env(run_dir), **codex_env(codex_home), **(env or {})}, cwd)


def opencode_by_hand(
    agent: Agent,
    prompt: str,
    cwd: Path,
    run_dir: Path,
    servers: Sequence[McpServer] = (),
    env: dict[str, str] | None = None,
    extra: Sequence[str] = (),
    api_key: str = "sk-opencode-test",
) -> Invocation:
    """`opencode run --format json PROMPT` against `agent` (config in `run_dir`). `extra` goes
    before the prompt, e.g. `("--session", SESSION_ID)`."""
    config = run_dir / "opencode.json"
    run_dir.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps(opencode_config(agent, servers, api_key)))
    argv = [str(require_cli("opencode")), "run", "--format", "json", *extra, prompt]
    return Invocation(argv, {**isolated_env(run_dir), **opencode_env(config), **(env or {})}, cwd)


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def claude_bin() -> Path:
    return require_cli("claude")


@pytest.fixture(scope="session")
def codex_bin() -> Path:
    return require_cli("codex")


@pytest.fixture(scope="session")
def opencode_bin() -> Path:
    return require_cli("opencode")


@pytest.fixture
def scripted_model() -> Iterator[ScriptedModel]:
    """A scripted model server on a free loopback port, for one test."""
    with ScriptedModel() as model:
        yield model
