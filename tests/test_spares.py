"""Spare worktrees: made ahead by the control plane, taken by a spawn, never given out twice."""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import sys
from pathlib import Path

import pytest
from conftest import CliRunner, git
from lifecycle_helpers import cleanup, spawn, use_free_port, wait_for

from fracta import repo as repo_mod
from fracta import spares, workspaces
from fracta.errors import GitError

PY = sys.executable


def worktrees(root: Path) -> list[str]:
    listing = git(root, "worktree", "list", "--porcelain")
    return sorted(line.split(" ", 1)[1] for line in listing.splitlines() if line.startswith("worktree "))


def commit(root: Path, name: str, text: str) -> str:
    (root / name).write_text(text)
    git(root, "add", name)
    git(root, "commit", "-q", "-m", f"add {name}")
    return git(root, "rev-parse", "HEAD")


@pytest.fixture
def initialized(initialized: repo_mod.Repo) -> repo_mod.Repo:
    """The usual test repo, with enough files for spares to be worth making (spares.MIN_INDEX_BYTES)."""
    folder = initialized.root / "src"
    folder.mkdir()
    for i in range(300):
        (folder / f"m{i}.py").write_text(f"{i}\n")
    git(initialized.root, "add", "src")
    git(initialized.root, "commit", "-q", "-m", "300 files")
    assert spares.worth_it(initialized)
    return initialized


def test_a_small_repository_gets_no_spares(repo_dir: Path, cli: CliRunner) -> None:
    assert cli("init").returncode == 0
    r = repo_mod.find(repo_dir)
    assert not spares.worth_it(r) and spares.wanted(r) == 0
    assert spares.make(r) is not None  # made by hand, it is still not taken:
    ws = workspaces.create_git(r, "api")
    assert len(spares.ready(r)) == 1 and ws.path.exists()


def test_a_spawn_takes_a_ready_spare_and_gets_a_clean_worktree_on_its_own_branch(initialized: repo_mod.Repo) -> None:
    spare = spares.make(initialized)
    assert spare is not None and spares.ready(initialized) == [spare]
    head = git(initialized.root, "rev-parse", "HEAD")
    ws = workspaces.create_git(initialized, "api")
    assert spares.ready(initialized) == [] and not spare.exists()  # moved, not copied
    assert ws.path == initialized.worktrees_dir / "api" and ws.base == head
    assert git(ws.path, "symbolic-ref", "HEAD") == "refs/heads/feature/api"
    assert git(ws.path, "rev-parse", "HEAD") == head
    assert git(ws.path, "status", "--porcelain", "--untracked-files=all") == ""
    assert worktrees(initialized.root) == sorted([str(initialized.root), str(ws.path)])
    # It is a worktree like any other: commits land on its branch, and removal cleans it all up.
    commit(ws.path, "work.txt", "done\n")
    assert git(initialized.root, "log", "-1", "--format=%s", "feature/api") == "add work.txt"
    workspaces.remove(initialized, ws)
    assert worktrees(initialized.root) == [str(initialized.root)]
    assert git(initialized.root, "branch", "--list", "feature/api") == ""


def test_a_spare_made_before_head_moved_is_brought_to_the_new_commit(initialized: repo_mod.Repo) -> None:
    assert spares.make(initialized) is not None
    newer = commit(initialized.root, "new.txt", "after the spare\n")
    ws = workspaces.create_git(initialized, "api")
    assert git(ws.path, "rev-parse", "HEAD") == newer
    assert (ws.path / "new.txt").read_text() == "after the spare\n"
    assert git(ws.path, "status", "--porcelain", "--untracked-files=all") == ""


def test_a_spare_serves_another_base_too(initialized: repo_mod.Repo) -> None:
    first = git(initialized.root, "rev-parse", "HEAD")
    commit(initialized.root, "new.txt", "later\n")
    assert spares.make(initialized) is not None
    ws = workspaces.create_git(initialized, "api", base=first)
    assert git(ws.path, "rev-parse", "HEAD") == first and not (ws.path / "new.txt").exists()


def test_a_failure_after_the_spare_moved_in_leaves_nothing_behind(initialized: repo_mod.Repo) -> None:
    # feature/api/old exists, so the branch feature/api cannot be created (git refuses the
    # file/folder clash) -- only after the spare was moved to the agent's path.
    git(initialized.root, "branch", "feature/api/old")
    assert spares.make(initialized) is not None
    with pytest.raises(GitError) as caught:
        workspaces.create_git(initialized, "api")
    assert "nothing was left behind" in caught.value.hint
    assert not (initialized.worktrees_dir / "api").exists()
    assert worktrees(initialized.root) == [str(initialized.root)]
    assert git(initialized.root, "branch", "--list", "feature/api") == ""
    assert git(initialized.root, "branch", "--list", "feature/api/old") != ""


def test_spares_are_not_made_or_taken_when_a_post_checkout_hook_must_run(initialized: repo_mod.Repo) -> None:
    spare = spares.make(initialized)
    assert spare is not None
    hook = initialized.root / ".git" / "hooks" / "post-checkout"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(f"#!/bin/sh\npwd > {initialized.root.parent / 'hook-ran-in'}\n")
    hook.chmod(0o755)
    ws = workspaces.create_git(initialized, "api")  # the ready spare is passed over: the hook runs here
    assert (initialized.root.parent / "hook-ran-in").read_text().strip() == str(ws.path)
    assert spares.make(initialized) is None
    assert not spare.exists()  # the passed-over spare is gone


def test_a_spare_that_is_not_ready_is_never_taken_and_is_cleared(initialized: repo_mod.Repo) -> None:
    spare = spares.make(initialized)
    assert spare is not None
    (spare.parent / f"{spare.name}{spares.MARK}").unlink()  # as if its maker died before finishing
    ws = workspaces.create_git(initialized, "api")
    assert spare.exists() and ws.path.exists()
    assert spares.discard_all(initialized, ready_too=False) == 1
    assert worktrees(initialized.root) == sorted([str(initialized.root), str(ws.path)])


def _create(root: str, name: str) -> str:
    r = repo_mod.find(Path(root), env={})
    return str(workspaces.create_git(r, name).path)


def test_concurrent_spawns_share_one_spare_without_giving_it_out_twice(initialized: repo_mod.Repo) -> None:
    assert spares.make(initialized) is not None
    names = [f"w{i}" for i in range(6)]
    with concurrent.futures.ProcessPoolExecutor(max_workers=6) as pool:
        paths = list(pool.map(_create, [str(initialized.root)] * len(names), names))
    assert paths == [str(initialized.worktrees_dir / n) for n in names]
    assert spares.ready(initialized) == []
    assert worktrees(initialized.root) == sorted([str(initialized.root), *paths])
    for name, path in zip(names, paths, strict=True):
        assert git(Path(path), "symbolic-ref", "HEAD") == f"refs/heads/feature/{name}"
        assert git(Path(path), "status", "--porcelain", "--untracked-files=all") == ""


def test_the_control_plane_keeps_a_spare_refills_it_after_a_spawn_and_removes_it_when_stopped(
    initialized: repo_mod.Repo, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_free_port(initialized)
    monkeypatch.setenv("PATH", f"{Path(PY).parent}{os.pathsep}{os.environ['PATH']}")
    with cleanup(initialized):
        assert cli("up").returncode == 0

        def state() -> str:  # made at the lowest CPU priority: a loaded machine may take a while
            log = initialized.logs_dir / "control.log"
            tail = log.read_text()[-3000:] if log.exists() else "(no control.log)"
            return f"worktrees: {os.listdir(initialized.worktrees_dir)}\ncontrol.log:\n{tail}"

        first = wait_for("a spare", lambda: spares.ready(initialized), timeout=120, explain=state)
        assert isinstance(first, list)
        spawn(cli, "api", PY, "-c", "pass")
        assert not first[0].exists()  # the spawn took it...
        # ...and the pool made another
        wait_for("a new spare", lambda: spares.ready(initialized), timeout=120, explain=state)
        assert cli("down").returncode == 0
    assert spares.ready(initialized) == []
    assert [n for n in os.listdir(initialized.worktrees_dir) if n.startswith(spares.PREFIX)] == []
    assert worktrees(initialized.root) == sorted([str(initialized.root), str(initialized.worktrees_dir / "api")])


def test_the_pool_tries_again_without_waiting_for_a_spawn_when_git_could_not_make_a_spare(
    initialized: repo_mod.Repo, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_free_port(initialized)
    monkeypatch.setenv("PATH", f"{Path(PY).parent}{os.pathsep}{os.environ['PATH']}")
    admin = initialized.root / ".git" / "worktrees"
    shutil.rmtree(admin, ignore_errors=True)
    admin.write_text("in the way\n")  # git cannot register a worktree now
    log = initialized.logs_dir / "control.log"
    with cleanup(initialized):
        assert cli("up").returncode == 0
        wait_for("the failed attempt", lambda: log.exists() and "could not make a spare worktree" in log.read_text())
        admin.unlink()
        wait_for("a spare with no spawn to prompt it", lambda: spares.ready(initialized), timeout=120)
        assert cli("down").returncode == 0
    assert spares.ready(initialized) == []


def test_no_spares_when_configured_off(initialized: repo_mod.Repo, cli: CliRunner) -> None:
    use_free_port(initialized)
    initialized.config_path.write_text(initialized.config_path.read_text().replace("spares: 1", "spares: 0"))
    r = repo_mod.find(initialized.root)
    assert spares.wanted(r) == 0
    with cleanup(r):
        assert cli("up").returncode == 0
        spawn(cli, "api", PY, "-c", "pass")
        assert cli("down").returncode == 0
    assert worktrees(r.root) == sorted([str(r.root), str(r.worktrees_dir / "api")])
