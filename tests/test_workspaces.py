from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import git

from fracta import agents, workspaces
from fracta import repo as repo_mod
from fracta.errors import AgentExists, GitError, InvalidInput, Refused


def commit(cwd: Path, name: str, text: str, message: str) -> str:
    (cwd / name).write_text(text)
    git(cwd, "add", name)
    git(cwd, "commit", "-q", "-m", message)
    return git(cwd, "rev-parse", "HEAD")


def registered_worktrees(root: Path) -> list[Path]:
    listing = git(root, "worktree", "list", "--porcelain")
    return [Path(line.split(" ", 1)[1]).resolve() for line in listing.splitlines() if line.startswith("worktree ")]


def assert_nothing_left(repo: repo_mod.Repo, name: str) -> None:
    assert git(repo.root, "branch", "--list", f"feature/{name}") == ""
    assert not (repo.worktrees_dir / name).exists()
    assert registered_worktrees(repo.root) == [repo.root.resolve()]
    assert agents.list_all(repo) == ([], [])


def test_a_git_workspace_is_a_worktree_on_its_own_branch_from_head(initialized: repo_mod.Repo) -> None:
    head = git(initialized.root, "rev-parse", "HEAD")
    ws = workspaces.create_git(initialized, "api")
    assert ws == workspaces.Workspace("git", initialized.worktrees_dir / "api", "feature/api", head)
    assert (ws.path / "README.md").read_text() == "# project\n"
    assert git(ws.path, "symbolic-ref", "--short", "HEAD") == "feature/api"
    assert git(ws.path, "rev-parse", "HEAD") == head
    assert ws.path.resolve() in registered_worktrees(initialized.root)
    untracked = [
        "?? .claude/",
        "?? .codex/",
        "?? .mcp.json",
        "?? fracta.yaml",
        "?? opencode.json",
    ]  # written by fracta init
    assert git(initialized.root, "status", "--porcelain").splitlines() == untracked  # the main worktree is untouched


def test_a_git_workspace_starts_from_the_base_ref_given(initialized: repo_mod.Repo) -> None:
    first = git(initialized.root, "rev-parse", "HEAD")
    git(initialized.root, "tag", "v1")
    commit(initialized.root, "later.txt", "later\n", "later work")
    ws = workspaces.create_git(initialized, "old", base="v1")
    assert ws.base == first
    assert git(ws.path, "rev-parse", "HEAD") == first
    assert not (ws.path / "later.txt").exists()
    assert workspaces.create_git(initialized, "prev", base="HEAD~1").base == first


def test_an_unknown_base_ref_is_named_and_nothing_is_left_behind(initialized: repo_mod.Repo) -> None:
    with pytest.raises(InvalidInput) as caught:
        workspaces.create_git(initialized, "api", base="no-such-branch")
    assert "no-such-branch" in caught.value.message
    assert "git branch" in caught.value.hint
    assert_nothing_left(initialized, "api")


def test_a_base_that_looks_like_an_option_is_an_unknown_ref(initialized: repo_mod.Repo) -> None:
    with pytest.raises(InvalidInput):
        workspaces.create_git(initialized, "api", base="--all")
    assert_nothing_left(initialized, "api")


def test_an_existing_branch_is_refused_and_left_as_it_was(initialized: repo_mod.Repo) -> None:
    git(initialized.root, "branch", "feature/api")
    before = git(initialized.root, "rev-parse", "feature/api")
    with pytest.raises(AgentExists) as caught:
        workspaces.create_git(initialized, "api")
    assert "feature/api" in caught.value.message
    assert "git branch -D feature/api" in caught.value.hint
    assert git(initialized.root, "rev-parse", "feature/api") == before
    assert not (initialized.worktrees_dir / "api").exists()
    assert registered_worktrees(initialized.root) == [initialized.root.resolve()]


def test_a_taken_worktree_path_is_refused_and_its_files_kept(initialized: repo_mod.Repo) -> None:
    taken = initialized.worktrees_dir / "api"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine\n")
    with pytest.raises(AgentExists) as caught:
        workspaces.create_git(initialized, "api")
    assert str(taken) in caught.value.message
    assert "move that folder away" in caught.value.hint
    assert (taken / "notes.txt").read_text() == "mine\n"
    assert git(initialized.root, "branch", "--list", "feature/api") == ""


def test_a_git_failure_midway_rolls_back_the_worktree_and_the_branch(initialized: repo_mod.Repo) -> None:
    hook = initialized.root / ".git" / "hooks" / "post-checkout"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text("#!/bin/sh\necho 'checkout refused by a hook' >&2\nexit 1\n")
    hook.chmod(0o755)
    with pytest.raises(GitError) as caught:
        workspaces.create_git(initialized, "api")
    assert "checkout refused by a hook" in caught.value.message
    assert "nothing was left behind" in caught.value.hint
    assert_nothing_left(initialized, "api")


def test_removing_a_git_workspace_deletes_worktree_and_branch_and_tolerates_a_second_time(
    initialized: repo_mod.Repo,
) -> None:
    ws = workspaces.create_git(initialized, "api")
    commit(ws.path, "work.txt", "done\n", "agent work")
    (ws.path / "scratch.txt").write_text("uncommitted\n")
    workspaces.remove(initialized, ws)
    assert_nothing_left(initialized, "api")
    workspaces.remove(initialized, ws)  # already gone: fine
    assert_nothing_left(initialized, "api")


def test_removing_a_worktree_whose_folder_vanished_prunes_it(initialized: repo_mod.Repo) -> None:
    ws = workspaces.create_git(initialized, "api")
    os.rename(ws.path, initialized.root.parent / "moved-away")
    workspaces.remove(initialized, ws)
    assert_nothing_left(initialized, "api")


def test_remove_refuses_paths_and_branches_that_fracta_did_not_make(initialized: repo_mod.Repo) -> None:
    with pytest.raises(Refused):
        workspaces.remove(initialized, workspaces.Workspace("git", initialized.root, "main", None))
    bad_branch = workspaces.Workspace("git", initialized.worktrees_dir / "x", "main", None)
    with pytest.raises(Refused):
        workspaces.remove(initialized, bad_branch)
    assert git(initialized.root, "branch", "--list", "main") != ""


def test_a_directory_workspace_is_created_if_missing_and_never_deleted(
    initialized: repo_mod.Repo, tmp_path: Path
) -> None:
    folder = tmp_path / "agents" / "docs"
    ws = workspaces.create_directory(initialized, "docs", folder)
    assert ws == workspaces.Workspace("directory", folder.resolve(), None, None)
    assert folder.is_dir()
    (folder / "draft.md").write_text("draft\n")
    workspaces.remove(initialized, ws)
    assert (folder / "draft.md").read_text() == "draft\n"


def test_a_directory_workspace_may_be_an_existing_folder_with_files(initialized: repo_mod.Repo, tmp_path: Path) -> None:
    folder = tmp_path / "existing"
    folder.mkdir()
    (folder / "data.csv").write_text("1,2\n")
    assert workspaces.create_directory(initialized, "data", folder).path == folder.resolve()
    assert (folder / "data.csv").exists()


def test_a_directory_workspace_is_refused_inside_fracta_state_on_a_file_or_shared_with_a_live_agent(
    initialized: repo_mod.Repo, tmp_path: Path
) -> None:
    with pytest.raises(Refused):
        workspaces.create_directory(initialized, "x", initialized.state / "mine")
    a_file = tmp_path / "file.txt"
    a_file.write_text("")
    with pytest.raises(InvalidInput):
        workspaces.create_directory(initialized, "x", a_file)
    shared = tmp_path / "shared"
    ws = workspaces.create_directory(initialized, "first", shared)
    agents.create(initialized, agents.new("first", "command", agents.Status.RUNNING, **ws.record_fields()))
    with pytest.raises(Refused) as caught:
        workspaces.create_directory(initialized, "second", shared)
    assert "first" in caught.value.message


def test_a_workspace_is_rebuilt_from_the_agent_record(initialized: repo_mod.Repo, tmp_path: Path) -> None:
    ws = workspaces.create_git(initialized, "api")
    agent = agents.create(initialized, agents.new("api", "command", agents.Status.RUNNING, **ws.record_fields()))
    assert workspaces.from_agent(agents.load(initialized, agent.name)) == ws
    joined = agents.new("me", "manual", agents.Status.RUNNING, kind="joined", workspace=str(tmp_path))
    assert workspaces.from_agent(joined) is None


def test_removing_a_worktree_git_left_locked_initializing_removes_it(initialized: repo_mod.Repo) -> None:
    """What a `git worktree add` killed in its checkout leaves: locked "initializing", no index."""
    ws = workspaces.create_git(initialized, "api")
    admin = Path(git(ws.path, "rev-parse", "--path-format=absolute", "--git-dir"))
    (admin / "locked").write_text("initializing")
    (admin / "index").unlink()
    (ws.path / "README.md").unlink()
    listed = [w for w in workspaces.worktrees(initialized) if w.path == ws.path.resolve()]
    assert [(w.branch, w.locked) for w in listed] == [("feature/api", "initializing")]
    workspaces.remove(initialized, ws)
    assert_nothing_left(initialized, "api")


def test_a_worktree_the_user_locked_is_not_removed(initialized: repo_mod.Repo) -> None:
    ws = workspaces.create_git(initialized, "api")
    git(initialized.root, "worktree", "lock", "--reason", "on a usb disk", str(ws.path))
    with pytest.raises(GitError) as caught:
        workspaces.remove(initialized, ws)
    assert "locked" in caught.value.stderr
    assert ws.path.is_dir() and git(initialized.root, "branch", "--list", "feature/api") != ""


def test_a_bare_folder_a_killed_git_left_is_removed_but_one_with_files_is_kept(initialized: repo_mod.Repo) -> None:
    bare = initialized.worktrees_dir / "bare"
    bare.mkdir(parents=True)
    (bare / ".git").write_text(f"gitdir: {initialized.root}/.git/worktrees/bare\n")  # git wrote no more
    workspaces.remove(initialized, workspaces.Workspace("git", bare, "feature/bare", None))
    assert not bare.exists()
    kept = initialized.worktrees_dir / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("someone's file\n")
    workspaces.remove(initialized, workspaces.Workspace("git", kept, "feature/kept", None))
    assert (kept / "notes.txt").read_text() == "someone's file\n"


def test_claim_is_called_before_anything_is_created_and_its_failure_leaves_nothing(
    initialized: repo_mod.Repo,
) -> None:
    seen: list[tuple[bool, bool]] = []

    def claim(ws: workspaces.Workspace) -> None:
        seen.append((ws.path.exists(), git(initialized.root, "branch", "--list", str(ws.branch)) != ""))
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        workspaces.create_git(initialized, "api", claim=claim)
    assert seen == [(False, False)]
    assert_nothing_left(initialized, "api")
