"""The sandbox settings the codex adapter writes into an agent's config.toml, in a real repository
with a real linked worktree (no CLI runs; tests/test_codex_work_e2e.py runs the real one)."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path
from typing import Any

import pytest
from conftest import git

from fracta import runtimes
from fracta.errors import ConfigError
from fracta.runtimes import codex_sandbox
from fracta.runtimes.base import LaunchContext


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    """A repository with one commit and agent ada's linked worktree on feature/ada."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    git(root, "commit", "-q", "--allow-empty", "-m", "init")
    wt = root / ".fracta" / "worktrees" / "ada"
    git(root, "worktree", "add", "-q", "-b", "feature/ada", str(wt))
    return wt


def launch(tmp_path: Path, workspace: Path, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """(the config.toml the agent's Codex reads, the variables its launch adds)."""
    fake = tmp_path / "codex"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    agent_dir = tmp_path / "state" / "agents" / "ada"
    agent_dir.mkdir(parents=True, exist_ok=True)
    ctx = LaunchContext(
        name="ada",
        prompt="Work.",
        workspace=workspace,
        agent_dir=agent_dir,
        home=tmp_path / "state",
        token="tok",
        control_url=None,
        gateway_url="http://127.0.0.1:1/mcp",
        options={"binary": str(fake), "inherit_user_config": False, **options},
        branch="feature/ada",
        root=tmp_path / "repo",
    )
    done = runtimes.get("codex").launch(ctx)
    return tomllib.loads((agent_dir / "codex-home" / "config.toml").read_text()), done.env


def test_git_roots_are_the_worktrees_own_folder_objects_and_the_branch_folders(worktree: Path) -> None:
    root = worktree.parents[2]
    git(root, "pack-refs", "--all")  # leaves no refs/heads/feature folder: it is made again
    common = (root / ".git").resolve()
    assert not (common / "refs" / "heads" / "feature").exists()
    assert codex_sandbox.git_roots(worktree, "feature/ada") == [
        common / "worktrees" / "ada",
        common / "objects",
        common / "refs" / "heads" / "feature",
        common / "logs" / "refs" / "heads" / "feature",
    ]
    assert (common / "refs" / "heads" / "feature").is_dir()
    # A branch right under refs/heads would need refs/heads itself writable, main's folder: never.
    assert codex_sandbox.git_roots(worktree, "ada") == [common / "worktrees" / "ada", common / "objects"]
    assert codex_sandbox.git_roots(root, "main") == []  # the user's own checkout: nothing of .git
    assert codex_sandbox.git_roots(root.parent, None) == []


def test_a_moved_spare_worktree_is_found_by_its_git_file_not_by_the_agents_name(worktree: Path) -> None:
    root = worktree.parents[2]
    moved = root / ".fracta" / "worktrees" / "bob"
    git(root, "worktree", "move", str(worktree), str(moved))
    gitdir, common = codex_sandbox.git_dirs(moved) or (None, None)
    assert gitdir == (root / ".git" / "worktrees" / "ada").resolve() and common == (root / ".git").resolve()


def test_the_default_sandbox_writes_the_worktree_git_roots_and_a_private_tmpdir_not_tmp(
    tmp_path: Path, worktree: Path
) -> None:
    config, env = launch(tmp_path, worktree, {})
    assert config["sandbox_mode"] == "workspace-write" and config["approval_policy"] == "never"
    assert config["allow_login_shell"] is False
    table = config["sandbox_workspace_write"]
    assert table["writable_roots"] == [str(r) for r in codex_sandbox.git_roots(worktree, "feature/ada")]
    assert table["exclude_slash_tmp"] is True and table["exclude_tmpdir_env_var"] is False
    assert table["network_access"] is False
    tmp = Path(env["TMPDIR"])
    assert tmp == tmp_path / "state" / "agents" / "ada" / "tmp" and stat.S_IMODE(tmp.stat().st_mode) == 0o700


def test_writable_roots_the_user_gives_add_to_the_ones_git_needs(
    tmp_path: Path, worktree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = tmp_path / "user-codex"
    user.mkdir()
    (user / "config.toml").write_text('[sandbox_workspace_write]\nwritable_roots = ["/srv/cache"]\n')
    monkeypatch.setenv("CODEX_HOME", str(user))
    extra = {"sandbox_workspace_write": {"writable_roots": ["/srv/data"], "network_access": True}}
    config, _ = launch(tmp_path, worktree, {"inherit_user_config": True, "config": extra})
    table = config["sandbox_workspace_write"]
    needed = [str(r) for r in codex_sandbox.git_roots(worktree, "feature/ada")]
    assert table["writable_roots"] == ["/srv/cache", "/srv/data", *needed]
    assert table["network_access"] is True  # the knob to widen it: fracta.yaml's config
    wide, _ = launch(tmp_path, worktree, {"config": {"sandbox_mode": "danger-full-access"}})
    assert wide["sandbox_mode"] == "danger-full-access"


def test_writable_roots_that_are_not_a_list_of_folders_are_refused_naming_where(tmp_path: Path, worktree: Path) -> None:
    bad = {"sandbox_workspace_write": {"writable_roots": "/srv"}}
    with pytest.raises(ConfigError, match=r"writable_roots in agents\.agent_runtimes\.codex\.config in fracta\.yaml"):
        launch(tmp_path, worktree, {"config": bad})


def test_a_plain_folder_workspace_gets_no_git_roots(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    config, env = launch(tmp_path, folder, {})
    assert config["sandbox_workspace_write"]["writable_roots"] == []
    assert Path(env["TMPDIR"]).is_dir()


def test_a_permission_profile_in_the_users_config_is_left_out_and_the_rest_kept(
    tmp_path: Path, worktree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = tmp_path / "user-codex"
    user.mkdir()
    (user / "config.toml").write_text(
        'model = "gpt-x"\ndefault_permissions = "mine"\n[permissions.mine.filesystem]\n":root" = "read"\n'
    )
    monkeypatch.setenv("CODEX_HOME", str(user))
    config, _ = launch(tmp_path, worktree, {"inherit_user_config": True})
    assert config["model"] == "gpt-x"
    assert "default_permissions" not in config and "permissions" not in config
    chosen, _ = launch(tmp_path, worktree, {"config": {"default_permissions": ":workspace"}})
    assert chosen["default_permissions"] == ":workspace"  # set in fracta.yaml, it is the user's choice
