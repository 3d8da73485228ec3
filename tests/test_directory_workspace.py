"""DirectoryWorkspace: a managed folder per agent under workspaces.root, and what counts as work
that exists nowhere else in it (real folders, real git repositories)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import git

from fracta import repo as repo_mod
from fracta import workspaces
from fracta.errors import AgentExists, Refused
from fracta.workspaces import directory


@pytest.fixture
def managed_repo(initialized: repo_mod.Repo, tmp_path: Path) -> repo_mod.Repo:
    text = initialized.config_path.read_text().replace("  kind: git ", "  kind: directory ", 1)
    initialized.config_path.write_text(text.replace("  root: /workspace/agents", "  root: agents-root"))
    return repo_mod.find(initialized.root, env={})


def test_a_relative_root_is_taken_from_the_repository_and_a_spawn_folder_is_made_under_it(
    managed_repo: repo_mod.Repo,
) -> None:
    ws = directory.create(managed_repo, "api")
    assert ws.path == (managed_repo.root / "agents-root" / "api").resolve() and ws.path.is_dir()
    assert ws.kind == workspaces.DIRECTORY and ws.branch is None
    assert directory.managed(managed_repo, ws)
    with pytest.raises(AgentExists, match="already exists"):
        directory.create(managed_repo, "api")


def test_a_folder_the_user_named_is_never_managed_nor_removed(managed_repo: repo_mod.Repo, tmp_path: Path) -> None:
    mine = directory.create_directory(managed_repo, "mine", tmp_path / "my-folder")
    (mine.path / "keep.txt").write_text("mine\n")
    assert not directory.managed(managed_repo, mine)
    workspaces.remove(managed_repo, mine)
    assert (mine.path / "keep.txt").exists()
    with pytest.raises(Refused, match="not a folder fracta made"):
        directory.remove(managed_repo, mine)


def test_in_a_plain_folder_every_file_is_unsaved_work(managed_repo: repo_mod.Repo) -> None:
    ws = directory.create(managed_repo, "plain")
    (ws.path / "sub").mkdir()
    assert directory.pending(ws).files == []  # an empty folder holds nothing to lose
    (ws.path / "sub" / "a.txt").write_text("a\n")
    found = directory.pending(ws)
    assert found.files == ["sub/a.txt"] and not found.repository


def test_in_a_git_folder_commits_not_on_a_remote_and_uncommitted_files_are_unsaved(
    managed_repo: repo_mod.Repo, tmp_path: Path
) -> None:
    ws = directory.create(managed_repo, "repo")
    git(ws.path, "init", "-q")
    assert directory.pending(ws) == directory.Pending(0, [], repository=True)  # no commit yet
    (ws.path / "f.txt").write_text("f\n")
    git(ws.path, "add", "f.txt")
    git(ws.path, "commit", "-qm", "one")
    assert directory.pending(ws) == directory.Pending(1, [], repository=True)
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(ws.path, "remote", "add", "origin", str(remote))
    git(ws.path, "push", "-q", "origin", "HEAD:refs/heads/main")
    git(ws.path, "fetch", "-q", "origin")
    assert directory.pending(ws) == directory.Pending(0, [], repository=True)
    (ws.path / "new.txt").write_text("new\n")
    assert directory.pending(ws) == directory.Pending(0, ["new.txt"], repository=True)


def test_set_aside_moves_the_folder_whole_and_remove_deletes_it(managed_repo: repo_mod.Repo) -> None:
    ws = directory.create(managed_repo, "gone")
    (ws.path / "x.txt").write_text("x\n")
    target = directory.set_aside(managed_repo, "gone", ws)
    assert target.parent == directory.root(managed_repo) / directory.ARCHIVE_DIR / "gone"
    assert (target / "x.txt").read_text() == "x\n" and not ws.path.exists()
    again = directory.create(managed_repo, "gone")
    workspaces.remove(managed_repo, again)
    assert not again.path.exists()
