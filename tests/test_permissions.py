"""The default permissions each adapter gives an agent (docs/permissions.md), and the knobs that
widen or narrow them; no CLI runs. The real CLIs obeying them are tested in
tests/test_real_work_e2e.py (edits, tests, git, and a refused write outside the worktree)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fracta import runtimes
from fracta.errors import ConfigError
from fracta.runtimes import permissions
from fracta.runtimes.base import LaunchContext


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    path = tmp_path / "bin" / "fake-cli"
    path.parent.mkdir()
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def ctx(tmp_path: Path, options: dict[str, Any]) -> LaunchContext:
    agent_dir = tmp_path / "state" / "agents" / "ada"
    agent_dir.mkdir(parents=True, exist_ok=True)
    (tmp_path / "ws").mkdir(exist_ok=True)
    return LaunchContext(
        name="ada",
        prompt="Fix the parser.",
        workspace=tmp_path / "ws",
        agent_dir=agent_dir,
        home=tmp_path / "state",
        token="tok-secret",
        control_url=None,
        gateway_url="http://127.0.0.1:8765/mcp",
        options=options,
        root=tmp_path,
    )


def claude_allowed(tmp_path: Path, options: dict[str, Any]) -> list[str]:
    argv = runtimes.get("claude").launch(ctx(tmp_path, options)).argv
    assert argv[argv.index("--permission-mode") + 1] == options.get("permission_mode", "acceptEdits")
    return argv[argv.index("--allowedTools") + 1].split(",")


def opencode_permission(tmp_path: Path, options: dict[str, Any]) -> dict[str, Any]:
    launch = runtimes.get("opencode").launch(ctx(tmp_path, options))
    config: dict[str, Any] = json.loads(launch.env["OPENCODE_CONFIG_CONTENT"])
    assert config["experimental"]["continue_loop_on_deny"] is True  # a refusal reaches the model
    return dict(config["permission"])


def test_claude_may_by_default_run_the_git_commands_and_the_usual_test_commands(tmp_path: Path, fake_bin: Path) -> None:
    allowed = claude_allowed(tmp_path, {"binary": str(fake_bin)})
    assert "Bash(git commit:*)" in allowed and "Bash(git merge:*)" in allowed
    assert "Bash(python -m pytest:*)" in allowed and "Bash(npm test:*)" in allowed
    assert "mcp__fracta__fracta_send" in allowed
    assert not [a for a in allowed if a in ("Bash", "Edit", "Write") or a.startswith("Bash(git push")]


def test_claude_test_commands_replace_the_test_rules_and_allowed_tools_the_git_rules(
    tmp_path: Path, fake_bin: Path
) -> None:
    allowed = claude_allowed(
        tmp_path, {"binary": str(fake_bin), "test_commands": ["make check"], "allowed_tools": ["Bash(git add:*)"]}
    )
    assert [a for a in allowed if not a.startswith("mcp__")] == ["Bash(git add:*)", "Bash(make check:*)"]
    narrow = claude_allowed(tmp_path, {"binary": str(fake_bin), "permission_mode": "default", "test_commands": []})
    assert [a for a in narrow if not a.startswith("mcp__")] == [f"Bash({c}:*)" for c in permissions.GIT_COMMANDS]


def test_opencode_by_default_edits_its_worktree_runs_git_and_tests_and_nothing_outside(
    tmp_path: Path, fake_bin: Path
) -> None:
    perm = opencode_permission(tmp_path, {"binary": str(fake_bin)})
    assert (perm["edit"], perm["external_directory"], perm["webfetch"]) == ("allow", "deny", "deny")
    bash = perm["bash"]
    assert next(iter(bash)) == "*" and bash["*"] == "deny"  # first: OpenCode's last matching rule wins
    for cmd in ("git commit", "git merge", "python -m pytest", "ls"):
        assert bash[cmd] == bash[f"{cmd} *"] == "allow"
    assert "rm *" not in bash and "git push *" not in bash


def test_opencode_permission_in_config_widens_the_defaults_and_test_commands_replace_the_tests(
    tmp_path: Path, fake_bin: Path
) -> None:
    perm = opencode_permission(
        tmp_path, {"binary": str(fake_bin), "config": {"permission": {"bash": "allow", "webfetch": "allow"}}}
    )
    assert (perm["bash"], perm["webfetch"], perm["external_directory"]) == ("allow", "allow", "deny")
    bash = opencode_permission(tmp_path, {"binary": str(fake_bin), "test_commands": ["make check"]})["bash"]
    assert bash["make check *"] == "allow"
    assert not [c for c in permissions.TEST_COMMANDS if c in bash]


@pytest.mark.parametrize("runtime", ["claude", "opencode"])
def test_test_commands_that_are_not_a_list_of_strings_are_refused_naming_the_key(
    tmp_path: Path, fake_bin: Path, runtime: str
) -> None:
    with pytest.raises(ConfigError, match=rf"agents\.agent_runtimes\.{runtime}\.test_commands"):
        runtimes.get(runtime).check(ctx(tmp_path, {"binary": str(fake_bin), "test_commands": "pytest"}))
