from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import CliRunner, git

from fracta import agents, events, mailbox, merge, progress, workspaces
from fracta import repo as repo_mod
from fracta.errors import AgentNotFound, MergeConflict, Refused

pytestmark = pytest.mark.both_backends


def commit(cwd: Path, name: str, text: str, message: str) -> str:
    (cwd / name).write_text(text)
    git(cwd, "add", name)
    git(cwd, "commit", "-q", "-m", message)
    return git(cwd, "rev-parse", "HEAD")


def spawn(
    repo: repo_mod.Repo, name: str, status: agents.Status = agents.Status.RUNNING
) -> tuple[agents.Agent, workspaces.Workspace]:
    ws = workspaces.create_git(repo, name)
    agent = agents.create(repo, agents.new(name, "command", status, **ws.record_fields()))
    return agent, ws


def repo_state(root: Path) -> tuple[str, str, str, str, bool]:
    """Everything a failed merge must leave as it was: HEAD, index, status, files, no merge in progress."""
    files = "\n".join(
        f"{p.relative_to(root)}:{hashlib.sha256(p.read_bytes()).hexdigest()}"
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.parts and ".fracta" not in p.parts
    )
    status = git(root, "status", "--porcelain=v2", "--branch", "--untracked-files=all")
    index = git(root, "ls-files", "--stage")
    return git(root, "rev-parse", "HEAD"), status, index, files, (root / ".git" / "MERGE_HEAD").exists()


def test_a_clean_branch_fast_forwards_and_the_agent_keeps_its_branch(initialized: repo_mod.Repo) -> None:
    _, ws = spawn(initialized, "api")
    before = git(initialized.root, "rev-parse", "HEAD")
    tip = commit(ws.path, "api.txt", "endpoints\n", "add endpoints")
    result = merge.merge(initialized, "api", cwd=initialized.root)
    assert result == merge.MergeResult("api", "feature/api", "main", tip, True, False, [], before)
    assert git(initialized.root, "rev-parse", "HEAD") == tip
    assert (initialized.root / "api.txt").read_text() == "endpoints\n"
    assert git(initialized.root, "rev-parse", "feature/api") == tip
    assert ws.path.is_dir()
    assert agents.load(initialized, "api").status == agents.Status.RUNNING
    assert progress.last_action(initialized) is not None
    assert progress.last_action(initialized)[0] == f"merged api into main at {tip[:10]}"  # type: ignore[index]
    assert "merged api into main" in initialized.progress_path.read_text()
    merged = [e.data for e in events.read(initialized) if e.data["event"] == "agent.merged"]
    assert merged[-1]["sha"] == tip


def test_diverged_branches_get_a_true_merge_commit(initialized: repo_mod.Repo) -> None:
    _, ws = spawn(initialized, "api")
    tip = commit(ws.path, "api.txt", "endpoints\n", "add endpoints")
    main_tip = commit(initialized.root, "main.txt", "chessmaster\n", "work on main")
    result = merge.merge(initialized, "api", cwd=initialized.root)
    assert not result.fast_forward and not result.already_up_to_date
    assert git(initialized.root, "rev-parse", "HEAD^1", "HEAD^2").splitlines() == [main_tip, tip]
    assert git(initialized.root, "log", "-1", "--format=%s") == "fracta: merge api (feature/api) into main"
    assert (initialized.root / "api.txt").exists() and (initialized.root / "main.txt").exists()


def test_merging_again_is_already_up_to_date(initialized: repo_mod.Repo) -> None:
    _, ws = spawn(initialized, "api")
    commit(ws.path, "api.txt", "endpoints\n", "add endpoints")
    first = merge.merge(initialized, "api", cwd=initialized.root)
    again = merge.merge(initialized, "api", cwd=initialized.root)
    assert again.already_up_to_date and not again.fast_forward
    assert again.sha == first.sha


def test_a_conflict_leaves_the_repo_exactly_as_it_was_and_lists_the_files(
    initialized: repo_mod.Repo, cli: CliRunner
) -> None:
    _, ws = spawn(initialized, "api")
    commit(ws.path, "README.md", "# from the agent\n", "agent edits readme")
    commit(ws.path, "clean.txt", "no conflict here\n", "agent adds a file")
    commit(initialized.root, "README.md", "# from the chessmaster\n", "chessmaster edits readme")
    before = repo_state(initialized.root)
    with pytest.raises(MergeConflict) as caught:
        merge.merge(initialized, "api", cwd=initialized.root)
    assert caught.value.files == ["README.md"]
    assert repo_state(initialized.root) == before
    result = cli("merge", "api")
    assert result.returncode == 4
    assert "README.md" in result.stderr and "nothing was changed" in result.stderr
    assert "clean.txt" not in result.stderr
    assert repo_state(initialized.root) == before
    untracked = [
        "?? .claude/",
        "?? .codex/",
        "?? .mcp.json",
        "?? fracta.yaml",
        "?? opencode.json",
    ]  # written by fracta init
    assert git(initialized.root, "status", "--porcelain").splitlines() == untracked


def test_merge_from_inside_a_worktree_is_refused(initialized: repo_mod.Repo, cli: CliRunner) -> None:
    _, ws = spawn(initialized, "api")
    commit(ws.path, "api.txt", "endpoints\n", "add endpoints")
    before = repo_state(initialized.root)
    (ws.path / "sub").mkdir()
    with pytest.raises(Refused):
        merge.merge(initialized, "api", cwd=ws.path / "sub")
    result = cli("merge", "api", cwd=ws.path)
    assert result.returncode == 5
    assert "main worktree" in result.stderr
    assert repo_state(initialized.root) == before


def test_merge_with_uncommitted_changes_in_the_main_worktree_is_refused(initialized: repo_mod.Repo) -> None:
    _, ws = spawn(initialized, "api")
    commit(ws.path, "api.txt", "endpoints\n", "add endpoints")
    (initialized.root / "README.md").write_text("# half-done edit\n")
    before = repo_state(initialized.root)
    with pytest.raises(Refused) as caught:
        merge.merge(initialized, "api", cwd=initialized.root)
    assert "uncommitted changes" in caught.value.message
    assert "README.md" in caught.value.message
    assert repo_state(initialized.root) == before


def test_untracked_files_block_a_merge_only_when_it_would_overwrite_them(initialized: repo_mod.Repo) -> None:
    _, ws = spawn(initialized, "api")
    commit(ws.path, "api.txt", "endpoints\n", "add endpoints")
    (initialized.root / "api.txt").write_text("my own notes\n")
    before = repo_state(initialized.root)
    with pytest.raises(Refused) as caught:
        merge.merge(initialized, "api", cwd=initialized.root)
    assert "api.txt" in caught.value.message and "overwrite" in caught.value.message
    assert repo_state(initialized.root) == before
    (initialized.root / "api.txt").rename(initialized.root / "my-notes.txt")
    assert merge.merge(initialized, "api", cwd=initialized.root).fast_forward  # fracta.yaml is untracked too


def test_merge_of_a_directory_agent_is_refused(initialized: repo_mod.Repo, cli: CliRunner, tmp_path: Path) -> None:
    ws = workspaces.create_directory(initialized, "docs", tmp_path / "docs")
    agents.create(initialized, agents.new("docs", "command", agents.Status.RUNNING, **ws.record_fields()))
    with pytest.raises(Refused):
        merge.merge(initialized, "docs", cwd=initialized.root)
    result = cli("merge", "docs")
    assert result.returncode == 5
    assert "only available for git worktrees" in result.stderr


def test_merge_of_an_unknown_agent_says_so(initialized: repo_mod.Repo, cli: CliRunner) -> None:
    with pytest.raises(AgentNotFound):
        merge.merge(initialized, "ghost", cwd=initialized.root)
    result = cli("merge", "ghost")
    assert result.returncode == 3
    assert "ghost" in result.stderr


def test_merge_onto_a_detached_head_is_refused(initialized: repo_mod.Repo) -> None:
    _, ws = spawn(initialized, "api")
    commit(ws.path, "api.txt", "endpoints\n", "add endpoints")
    git(initialized.root, "switch", "-q", "--detach")
    with pytest.raises(Refused) as caught:
        merge.merge(initialized, "api", cwd=initialized.root)
    assert "detached HEAD" in caught.value.message


def test_merge_during_an_unfinished_merge_is_refused_and_does_not_abort_it(initialized: repo_mod.Repo) -> None:
    _, ws = spawn(initialized, "api")
    commit(ws.path, "api.txt", "endpoints\n", "add endpoints")
    git(initialized.root, "branch", "side")
    commit(initialized.root, "README.md", "# main\n", "main edit")
    git(initialized.root, "switch", "-q", "side")
    commit(initialized.root, "README.md", "# side\n", "side edit")
    git(initialized.root, "switch", "-q", "main")
    with pytest.raises(Exception):  # noqa: B017 - the conflict is the setup, not the test
        git(initialized.root, "merge", "side")
    with pytest.raises(Refused):
        merge.merge(initialized, "api", cwd=initialized.root)
    assert (initialized.root / ".git" / "MERGE_HEAD").exists()


def test_notify_tells_every_other_live_agent_to_merge_the_updated_branch(
    initialized: repo_mod.Repo, cli: CliRunner
) -> None:
    _, ws = spawn(initialized, "api")
    spawn(initialized, "web")
    spawn(initialized, "docs", agents.Status.IDLE)
    spawn(initialized, "old", agents.Status.DONE)
    commit(ws.path, "api.txt", "endpoints\n", "add endpoints")
    result = cli("merge", "api", "--notify", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    short = data["sha"][:10]
    assert data["version"] == 1 and data["into"] == "main" and data["fast_forward"] is True
    assert sorted(data["notified"]) == ["docs", "web"]
    for name in ("web", "docs"):
        [msg] = mailbox.read(initialized, name).messages
        assert msg.sender == "chessmaster"
        assert msg.body == f"main updated to {short}; run git merge main"
    assert mailbox.read(initialized, "old").messages == []
    assert mailbox.read(initialized, "api").messages == []


def test_the_cli_prints_what_was_merged(initialized: repo_mod.Repo, cli: CliRunner) -> None:
    _, ws = spawn(initialized, "api")
    tip = commit(ws.path, "api.txt", "endpoints\n", "add endpoints")
    result = cli("merge", "api")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"merged feature/api into main at {tip[:10]} (fast-forward)"
