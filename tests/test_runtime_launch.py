"""What each AI CLI adapter builds (argv, env, per-agent files) and the prompt it renders; no CLI runs.

The real CLIs reading these files are tested in tests/test_runtimes_e2e.py.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from fracta import runtimes
from fracta.credentials import CredentialPlan
from fracta.errors import ConfigError, FractaError
from fracta.runtimes import prompt
from fracta.runtimes.base import LaunchContext

GATEWAY = "http://127.0.0.1:8765/mcp"


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    path = tmp_path / "bin" / "fake-cli"
    path.parent.mkdir()
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def ctx(tmp_path: Path, options: dict[str, Any], **extra: Any) -> LaunchContext:
    agent_dir = tmp_path / "state" / "agents" / "ada"
    agent_dir.mkdir(parents=True, exist_ok=True)
    workspace = tmp_path / "ws"
    workspace.mkdir(exist_ok=True)
    values: dict[str, Any] = {
        "name": "ada",
        "prompt": "Fix the parser.",
        "workspace": workspace,
        "agent_dir": agent_dir,
        "home": tmp_path / "state",
        "token": "tok-secret",
        "control_url": "http://127.0.0.1:1",
        "gateway_url": GATEWAY,
        "options": options,
        "branch": "feature/ada",
        "root": tmp_path,
    }
    return LaunchContext(**{**values, **extra})


def private(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) == 0o600


def test_claude_wires_the_gateway_with_the_agents_token_and_allows_fractas_tools(
    tmp_path: Path, fake_bin: Path
) -> None:
    c = ctx(tmp_path, {"binary": str(fake_bin), "model": "sonnet", "args": ["--max-turns", "9"]})
    launch = runtimes.get("claude").launch(c)
    mcp_file = c.agent_dir / "claude-mcp.json"
    assert json.loads(mcp_file.read_text()) == {
        "mcpServers": {"fracta": {"type": "http", "url": GATEWAY, "headers": {"Authorization": "Bearer tok-secret"}}}
    }
    assert private(mcp_file)
    argv = launch.argv
    assert argv[:2] == [str(fake_bin), "-p"] and "Fix the parser." in argv[2] and "feature/ada" in argv[2]
    assert argv[argv.index("--mcp-config") + 1] == str(mcp_file) and "--strict-mcp-config" in argv
    allowed = argv[argv.index("--allowedTools") + 1].split(",")
    assert {"mcp__fracta__fracta_send", "mcp__fracta__fracta_inbox", "mcp__fracta__fracta_set_intent"} <= set(allowed)
    assert argv[argv.index("--output-format") + 1] == "stream-json" and "--verbose" in argv
    assert argv[argv.index("--model") + 1] == "sonnet" and argv[-2:] == ["--max-turns", "9"]
    assert "--resume" not in argv and "--settings" not in argv
    assert "HOME" not in launch.env and launch.cwd == c.workspace
    assert "tok-secret" not in " ".join(argv)  # the token travels in a 0600 file, not on the command line


def test_claude_resumes_a_session_and_gets_its_api_key_helper_through_a_settings_file(
    tmp_path: Path, fake_bin: Path
) -> None:
    plan = CredentialPlan(claude_api_key_helper="fracta-helper --print")
    c = ctx(tmp_path, {"binary": str(fake_bin), "settings": {"env": {"X": "{{agent}}"}}}, session_id="s-1")
    c = LaunchContext(**{**c.__dict__, "credentials": plan, "prompt": None})
    argv = runtimes.get("claude").launch(c).argv
    assert argv[argv.index("--resume") + 1] == "s-1"
    assert "fracta_inbox" in argv[2] and '"ada"' in argv[2]  # the wake prompt
    settings = json.loads(Path(argv[argv.index("--settings") + 1]).read_text())
    assert settings == {"env": {"X": "ada"}, "apiKeyHelper": "fracta-helper --print"}


def test_codex_builds_its_own_home_over_the_users_config_without_touching_it(
    tmp_path: Path, fake_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = tmp_path / "user-codex"
    user.mkdir()
    (user / "config.toml").write_text('model = "gpt-x"\n[mcp_servers.mine]\ncommand = "x"\n[tui]\ntheme = "dark"\n')
    (user / "auth.json").write_text("{}")
    before = (user / "config.toml").read_text()
    monkeypatch.setenv("CODEX_HOME", str(user))
    options = {"binary": str(fake_bin), "config": {"model_provider": "p", "model_providers": {"p": {"base_url": "u"}}}}
    c = ctx(tmp_path, options)
    launch = runtimes.get("codex").launch(c)
    home = c.agent_dir / "codex-home"
    config = tomllib.loads((home / "config.toml").read_text())
    assert private(home / "config.toml")
    assert config["model"] == "gpt-x" and config["tui"] == {"theme": "dark"}  # the user's settings carry over
    assert config["approval_policy"] == "never" and config["features"]["plugins"] is False
    assert config["model_providers"]["p"]["base_url"] == "u"
    assert config["mcp_servers"] == {
        "fracta": {
            "url": GATEWAY,
            "http_headers": {"Authorization": "Bearer tok-secret"},
            "default_tools_approval_mode": "approve",
            "required": True,
        }
    }
    assert (home / "auth.json").resolve() == (user / "auth.json").resolve()
    assert (user / "config.toml").read_text() == before
    assert launch.env["CODEX_HOME"] == str(home)
    assert launch.argv[:4] == [str(fake_bin), "exec", "--json", "--skip-git-repo-check"]
    resumed = runtimes.get("codex").launch(LaunchContext(**{**c.__dict__, "session_id": "t-9"})).argv
    assert resumed[:3] == [str(fake_bin), "exec", "resume"] and resumed[-2] == "t-9"


def npm_codex(prefix: Path, *, hoisted: bool = True) -> tuple[Path, Path]:
    """An npm install of @openai/codex under `prefix`: the `.bin/codex` link to the Node launcher,
    and the native binary in the platform package (hoisted beside it, or nested inside it)."""
    from fracta.runtimes import codex_native

    triple, package = codex_native.TARGETS[(sys.platform, os.uname().machine.lower())]
    modules = prefix / "node_modules"
    launcher = modules / "@openai" / "codex" / "bin" / "codex.js"
    launcher.parent.mkdir(parents=True)
    launcher.write_text("#!/usr/bin/env node\n")
    launcher.chmod(0o755)
    platform_root = modules if hoisted else modules / "@openai" / "codex" / "node_modules"
    native = platform_root / "@openai" / package / "vendor" / triple / "bin" / "codex"
    native.parent.mkdir(parents=True)
    native.write_text("#!/bin/sh\n")
    native.chmod(0o755)
    (modules / ".bin").mkdir()
    (modules / ".bin" / "codex").symlink_to(Path("..") / "@openai" / "codex" / "bin" / "codex.js")
    return modules / ".bin" / "codex", native


@pytest.mark.parametrize("hoisted", [True, False])
def test_codex_from_npm_runs_its_native_binary_with_the_launchers_variables(tmp_path: Path, hoisted: bool) -> None:
    shim, native = npm_codex(tmp_path / "prefix", hoisted=hoisted)
    launch = runtimes.get("codex").launch(ctx(tmp_path, {"binary": str(shim)}))
    assert launch.argv[:2] == [str(native), "exec"]
    package_root = (tmp_path / "prefix" / "node_modules" / "@openai" / "codex").resolve()
    assert launch.env["CODEX_MANAGED_PACKAGE_ROOT"] == str(package_root)
    assert launch.env["CODEX_MANAGED_BY_NPM"] == "1"


def test_codex_keeps_the_npm_launcher_when_told_to_or_when_the_native_binary_is_missing(tmp_path: Path) -> None:
    shim, native = npm_codex(tmp_path / "prefix")
    kept = runtimes.get("codex").launch(ctx(tmp_path, {"binary": str(shim), "native": False}))
    assert kept.argv[0] == str(shim) and "CODEX_MANAGED_PACKAGE_ROOT" not in kept.env
    native.chmod(0o644)  # not executable: as good as missing
    fallback = runtimes.get("codex").launch(ctx(tmp_path, {"binary": str(shim)}))
    assert fallback.argv[0] == str(shim) and "CODEX_MANAGED_PACKAGE_ROOT" not in fallback.env
    with pytest.raises(ConfigError, match=r"agents\.agent_runtimes\.codex\.native .*true or false"):
        runtimes.get("codex").check(ctx(tmp_path, {"binary": str(shim), "native": "yes"}))


def test_opencode_gets_a_config_file_the_model_and_its_own_tmpdir(tmp_path: Path, fake_bin: Path) -> None:
    options = {"binary": str(fake_bin), "model": "p/m", "config": {"provider": {"p": {"npm": "x"}}}}
    c = ctx(tmp_path, options, session_id="ses_1")
    launch = runtimes.get("opencode").launch(c)
    # Passed as OPENCODE_CONFIG_CONTENT, which OpenCode merges after a project's opencode.json.
    config = json.loads(launch.env["OPENCODE_CONFIG_CONTENT"])
    assert "OPENCODE_CONFIG" not in launch.env
    copy = c.agent_dir / "opencode.json"
    assert private(copy) and json.loads(copy.read_text()) == config
    assert config["permission"]["external_directory"] == "deny" and config["permission"]["bash"]["*"] == "deny"
    assert config["mcp"]["fracta"] == {
        "type": "remote",
        "url": GATEWAY,
        "headers": {"Authorization": "Bearer tok-secret"},
        "enabled": True,
    }
    assert config["model"] == "p/m" and config["provider"] == {"p": {"npm": "x"}}
    assert Path(launch.env["TMPDIR"]).is_dir() and Path(launch.env["TMPDIR"]).parent == c.agent_dir
    argv = launch.argv
    assert argv[:4] == [str(fake_bin), "run", "--format", "json"]
    assert argv[argv.index("--session") + 1] == "ses_1" and argv[argv.index("--model") + 1] == "p/m"


@pytest.mark.parametrize("runtime", ["claude", "codex", "opencode"])
def test_a_missing_binary_names_the_runtime_and_the_key_to_set(tmp_path: Path, runtime: str) -> None:
    with pytest.raises(FractaError) as err:
        runtimes.get(runtime).check(ctx(tmp_path, {"binary": str(tmp_path / "nope")}))
    assert runtime in err.value.message and f"agents.agent_runtimes.{runtime}.binary" in err.value.hint


def test_an_unknown_option_is_refused_naming_it(tmp_path: Path, fake_bin: Path) -> None:
    with pytest.raises(ConfigError, match="modle"):
        runtimes.get("claude").check(ctx(tmp_path, {"binary": str(fake_bin), "modle": "x"}))


def test_a_user_template_at_the_repo_root_replaces_the_default_prompt(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "agent_prompt.md").write_text("I am {{ name }} on {{branch}}: {{task}}")
    assert prompt.for_launch(ctx(tmp_path, {})) == "I am ada on feature/ada: Fix the parser.\n"
    (tmp_path / "templates" / "agent_prompt.md").write_text("{{nmae}}")
    with pytest.raises(ConfigError, match="nmae"):
        prompt.for_launch(ctx(tmp_path, {}))


def test_the_default_prompt_teaches_the_inbox_rhythm(tmp_path: Path) -> None:
    text = prompt.for_launch(ctx(tmp_path, {}))
    for needle in ("ada", "Fix the parser.", "feature/ada", "fracta_inbox", "fracta_set_intent", "fracta_send"):
        assert needle in text
    assert "chessmaster" in text and str(tmp_path / "ws") in text
    assert os.sep in text


def test_opencode_sets_up_its_database_before_a_first_run_only(tmp_path: Path, fake_bin: Path) -> None:
    adapter = runtimes.get("opencode")
    first = adapter.launch(ctx(tmp_path, {"binary": str(fake_bin)})).first_start
    assert first is not None and first.argv == [str(fake_bin), "session", "list"]
    assert first.creates == "opencode/opencode.db"
    woken = adapter.launch(ctx(tmp_path, {"binary": str(fake_bin)}, session_id="ses_1"))
    assert woken.first_start is None  # a wake resumes a session: OpenCode has run there before
