"""Shared fixtures: real git repos in temporary folders, the real `fracta` CLI as a subprocess, and
a real PostgreSQL server (tests/pg.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pg
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
def state_backend() -> str:
    """The store `initialized` sets up: "files", or both in modules marked both_backends."""
    return "files"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked both_backends (a module's `pytestmark`) run once per store backend, but for
    those also marked files_only (they handle .fracta/'s files by hand)."""
    marked = metafunc.definition.get_closest_marker
    if "state_backend" in metafunc.fixturenames and marked("both_backends"):
        metafunc.parametrize("state_backend", ["files"] if marked("files_only") else ["files", "postgres"])


@pytest.fixture
def initialized(
    repo_dir: Path, cli: CliRunner, state_backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> repo_mod.Repo:
    """The test repo after `fracta init`; with the postgres backend, its state in a fresh database
    named by FRACTA_DATABASE_URL, as users set it up (fracta.yaml's `state:` section)."""
    result = cli("init")
    assert result.returncode == 0, result.stderr
    if state_backend == "postgres":
        monkeypatch.setenv("FRACTA_DATABASE_URL", request.getfixturevalue("pg_url"))
        config = repo_dir / "fracta.yaml"
        chosen = "  backend: postgres\n  url: ${FRACTA_DATABASE_URL}\n"
        config.write_text(config.read_text().replace("  backend: files ", chosen + "  #", 1))
    return repo_mod.find(repo_dir, env={})


# --- a real PostgreSQL ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[pg.PgServer]:
    """This test process's own PostgreSQL server (each xdist worker starts one when it needs it)."""
    pg.require()
    bindir = pg.find_bindir()
    assert bindir is not None
    server = pg.start(bindir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: pg.PgServer) -> Iterator[str]:
    """A fresh empty database for this test: postgresql://postgres:PASSWORD@127.0.0.1:PORT/NAME."""
    name = pg_server.create_database()
    yield pg_server.url(name)
    pg_server.drop_database(name)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """PostgreSQL tests that skipped are said once more, where nobody can miss it."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if pg.SKIP_MARK in str(r.longrepr)]
    if skipped:
        reason = str(skipped[0].longrepr[-1]) if isinstance(skipped[0].longrepr, tuple) else pg.SKIP_MARK
        terminalreporter.write_sep("!", f"{len(skipped)} PostgreSQL test(s) SKIPPED", red=True, bold=True)
        terminalreporter.write_line(reason.removeprefix("Skipped: "), red=True, bold=True)
        terminalreporter.write_line(
            "scripts/test installs what it needs. FRACTA_REQUIRE_POSTGRES=1 makes this a failure."
        )
