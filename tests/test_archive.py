from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import git

from fracta import agents, archive, events, workspaces
from fracta import repo as repo_mod
from fracta.errors import Refused


def commit(cwd: Path, name: str, text: str, message: str) -> str:
    (cwd / name).write_text(text)
    git(cwd, "add", name)
    git(cwd, "commit", "-q", "-m", message)
    return git(cwd, "rev-parse", "HEAD")


def spawn(repo: repo_mod.Repo, name: str) -> tuple[agents.Agent, workspaces.Workspace]:
    ws = workspaces.create_git(repo, name)
    agent = agents.create(repo, agents.new(name, "command", agents.Status.RUNNING, **ws.record_fields()))
    return agent, ws


def follow(hint: str) -> None:
    """Run the commands the restore hint prints, exactly as a user would paste them."""
    commands = [line.strip() for line in hint.splitlines() if line.startswith("  ")]
    assert commands, hint
    subprocess.run(" && ".join(commands), shell=True, check=True, capture_output=True, text=True)


def dirty_the_worktree(ws: workspaces.Workspace) -> None:
    (ws.path / "README.md").write_text("# project\nedited by the agent\n")
    (ws.path / "staged.txt").write_text("staged\n")
    git(ws.path, "add", "staged.txt")
    (ws.path / "notes").mkdir()
    (ws.path / "notes" / "todo.txt").write_text("untracked\n")
    (ws.path / ".gitignore").write_text("build/\n")
    (ws.path / "build").mkdir()
    (ws.path / "build" / "out.bin").write_text("ignored\n")


def test_a_fresh_worktree_has_nothing_unsaved(initialized: repo_mod.Repo) -> None:
    agent, _ = spawn(initialized, "api")
    unsaved = archive.unsaved_work(initialized, agent)
    assert unsaved == archive.UnsavedWork(0, [], "feature/api")
    assert not unsaved.any
    assert unsaved.describe() == "nothing unsaved"


def test_commits_found_on_no_other_branch_are_unsaved_until_merged(initialized: repo_mod.Repo) -> None:
    agent, ws = spawn(initialized, "api")
    commit(ws.path, "one.txt", "1\n", "one")
    commit(ws.path, "two.txt", "2\n", "two")
    unsaved = archive.unsaved_work(initialized, agent)
    assert unsaved.unmerged_commits == 2
    assert unsaved.any
    assert "2 commit(s) on feature/api" in unsaved.describe()
    git(initialized.root, "merge", "-q", "--no-edit", "feature/api")
    assert not archive.unsaved_work(initialized, agent).any


def test_commits_on_a_detached_head_in_the_worktree_are_unsaved(initialized: repo_mod.Repo) -> None:
    agent, ws = spawn(initialized, "api")
    git(ws.path, "switch", "-q", "--detach")
    commit(ws.path, "loose.txt", "loose\n", "a commit on no branch")
    assert archive.unsaved_work(initialized, agent).unmerged_commits == 1


def test_uncommitted_tracked_staged_and_untracked_files_are_unsaved_but_ignored_ones_are_not(
    initialized: repo_mod.Repo,
) -> None:
    agent, ws = spawn(initialized, "api")
    dirty_the_worktree(ws)
    unsaved = archive.unsaved_work(initialized, agent)
    assert unsaved.unmerged_commits == 0
    assert sorted(unsaved.dirty_files) == [".gitignore", "README.md", "notes/todo.txt", "staged.txt"]
    assert "4 uncommitted file(s)" in unsaved.describe()


def test_a_directory_workspace_has_nothing_unsaved_and_nothing_to_save(
    initialized: repo_mod.Repo, tmp_path: Path
) -> None:
    ws = workspaces.create_directory(initialized, "docs", tmp_path / "docs")
    (ws.path / "draft.md").write_text("draft\n")
    agent = agents.create(initialized, agents.new("docs", "command", agents.Status.RUNNING, **ws.record_fields()))
    assert not archive.unsaved_work(initialized, agent).any
    with pytest.raises(Refused):
        archive.save(initialized, agent)


def test_save_keeps_commits_and_uncommitted_files_and_the_hint_restores_them(initialized: repo_mod.Repo) -> None:
    agent, ws = spawn(initialized, "api")
    tip = commit(ws.path, "feature.txt", "feature\n", "agent commit")
    dirty_the_worktree(ws)
    saved = archive.save(initialized, agent)
    assert saved.ref.startswith("refs/fracta/archive/api/")
    assert saved.uncommitted
    assert git(initialized.root, "rev-parse", saved.ref) == saved.commit
    assert git(initialized.root, "rev-parse", f"{saved.ref}^") == tip
    assert git(initialized.root, "show", f"{saved.ref}:notes/todo.txt") == "untracked"
    last = list(events.read(initialized))[-1].data
    assert (last["event"], last["ref"], last["agent"]) == ("work.saved", saved.ref, "api")
    # What kill --force does next: the worktree and the branch go away.
    workspaces.remove(initialized, ws)
    assert git(initialized.root, "branch", "--list", "feature/api") == ""
    follow(saved.restore_hint)
    restored = initialized.root.parent / f"{initialized.root.name}-api-restored"
    assert git(restored, "rev-parse", "HEAD") == tip
    assert git(restored, "log", "--format=%s", "-1") == "agent commit"
    assert (restored / "README.md").read_text() == "# project\nedited by the agent\n"
    assert (restored / "notes" / "todo.txt").read_text() == "untracked\n"
    assert not (restored / "build").exists()  # ignored files are not saved
    status = {line.strip() for line in git(restored, "status", "--porcelain", "--untracked-files=all").splitlines()}
    assert status == {"?? .gitignore", "M README.md", "?? notes/todo.txt", "?? staged.txt"}


def test_save_of_a_clean_worktree_points_the_ref_at_the_branch_tip(initialized: repo_mod.Repo) -> None:
    agent, ws = spawn(initialized, "api")
    tip = commit(ws.path, "feature.txt", "feature\n", "agent commit")
    saved = archive.save(initialized, agent)
    assert saved.commit == tip
    assert not saved.uncommitted
    workspaces.remove(initialized, ws)
    follow(saved.restore_hint)
    assert git(initialized.root, "rev-parse", "api-restored") == tip


def test_save_leaves_the_agents_worktree_and_index_untouched(initialized: repo_mod.Repo) -> None:
    agent, ws = spawn(initialized, "api")
    commit(ws.path, "feature.txt", "feature\n", "agent commit")
    dirty_the_worktree(ws)
    index = Path(git(ws.path, "rev-parse", "--path-format=absolute", "--git-path", "index"))

    def snapshot() -> tuple[str, str, str, list[tuple[str, float]]]:
        files = sorted(
            (str(p.relative_to(ws.path)), p.stat().st_mtime) for p in ws.path.rglob("*") if ".git" not in p.parts
        )
        return (
            hashlib.sha256(index.read_bytes()).hexdigest(),
            git(ws.path, "rev-parse", "HEAD"),
            git(ws.path, "symbolic-ref", "HEAD"),
            files,
        )

    before = snapshot()
    status_before = git(ws.path, "status", "--porcelain", "--untracked-files=all")
    before = snapshot()  # git status may refresh the index; compare from here on
    archive.save(initialized, agent)
    assert snapshot() == before
    assert git(ws.path, "status", "--porcelain", "--untracked-files=all") == status_before
    assert git(ws.path, "diff", "--cached", "--name-only") == "staged.txt"


def test_two_saves_in_the_same_second_get_two_refs(initialized: repo_mod.Repo) -> None:
    agent, ws = spawn(initialized, "api")
    commit(ws.path, "feature.txt", "feature\n", "agent commit")
    first = archive.save(initialized, agent)
    second = archive.save(initialized, agent)
    assert first.ref != second.ref
    refs = git(initialized.root, "for-each-ref", "--format=%(refname)", "refs/fracta/archive/api/").splitlines()
    assert sorted(refs) == sorted([first.ref, second.ref])


def test_save_after_the_worktree_folder_vanished_keeps_the_branch_tip(initialized: repo_mod.Repo) -> None:
    agent, ws = spawn(initialized, "api")
    tip = commit(ws.path, "feature.txt", "feature\n", "agent commit")
    shutil.rmtree(ws.path)
    unsaved = archive.unsaved_work(initialized, agent)
    assert (unsaved.unmerged_commits, unsaved.dirty_files) == (1, [])
    saved = archive.save(initialized, agent)
    assert saved.commit == tip and not saved.uncommitted
    workspaces.remove(initialized, ws)
    assert git(initialized.root, "rev-parse", saved.ref) == tip
