"""Shared fixtures: real git repos in temporary folders and the real `fracta` CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from fracta import repo as repo_mod

CliRunner = Callable[..., subprocess.CompletedProcess[str]]

# Fixtures for the real AI CLIs under the scripted model (claude_bin, codex_bin, opencode_bin,
# scripted_model): see tests/ai_clis.py and docs/testing-ai-clis.md.
pytest_plugins = ["ai_clis"]


@pytest.fixture(autouse=True)
def git_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Git identity and defaults from a test-owned config; no fracta variables leak in."""
    home = tmp_path_factory.mktemp("gitconfig")
    cfg = home / "gitconfig"
    cfg.write_text(
        "[user]\n\tname = fracta tests\n\temail = tests@fracta.invalid\n"
        "[init]\n\tdefaultBranch = main\n\ttemplateDir =\n"
        "[advice]\n\tdetachedHead = false\n"
    )
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(cfg))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in list(os.environ):
        if var.startswith("FRACTA_") or (
            var.startswith("GIT_") and var not in {"GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM"}
        ):
            monkeypatch.delenv(var, raising=False)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo_dir(tmp_path: Path) -> Path:
    """A real git repository with one commit on main."""
    root = tmp_path / "project"
    root.mkdir()
    git(root, "init", "-q")
    (root / "README.md").write_text("# project\n")
    git(root, "add", "README.md")
    git(root, "commit", "-q", "-m", "initial commit")
    return root


@pytest.fixture
def cli(repo_dir: Path) -> CliRunner:
    """Run the real `fracta` CLI in a subprocess (default cwd: the test repo)."""

    def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "fracta", *args],
            cwd=cwd or repo_dir,
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            timeout=120,
        )

    return run


@pytest.fixture
def initialized(repo_dir: Path, cli: CliRunner) -> repo_mod.Repo:
    """The test repo after `fracta init`."""
    result = cli("init")
    assert result.returncode == 0, result.stderr
    return repo_mod.find(repo_dir, env={})
