"""Reviewing an agent's work without changing anything: its branch against the integration branch,
merge's preview (the same checks and conflict preview as merge), its messages both ways."""

from __future__ import annotations

import json

import pytest
from conftest import CliRunner, git
from test_merge import commit, repo_state, spawn

from fracta import branches, correspondence, mailbox, merge
from fracta import repo as repo_mod
from fracta.errors import AgentNotFound

pytestmark = pytest.mark.both_backends


def test_the_preview_tells_what_merge_would_do_and_changes_nothing(initialized: repo_mod.Repo) -> None:
    root = initialized.root
    commit(root, "shared.txt", "one\n", "shared")
    _, ws = spawn(initialized, "api")
    assert merge.preview(initialized, "api").would == "nothing"

    commit(ws.path, "api.txt", "endpoints\n", "add endpoints")
    assert merge.preview(initialized, "api").would == "fast-forward"
    commit(root, "other.txt", "x\n", "main moves on")
    assert merge.preview(initialized, "api").would == "merge"

    (root / "shared.txt").write_text("dirty\n")  # uncommitted in the main worktree: merge refuses
    refused = merge.preview(initialized, "api")
    assert refused.would == "refused" and "uncommitted changes" in (refused.refused or "") and refused.hint
    git(root, "checkout", "shared.txt")

    commit(ws.path, "shared.txt", "theirs\n", "theirs")
    commit(root, "shared.txt", "mine\n", "mine")
    before = repo_state(root)
    conflict = merge.preview(initialized, "api")
    assert (conflict.would, conflict.conflicts, conflict.into) == ("conflict", ["shared.txt"], "main")
    assert repo_state(root) == before
    with pytest.raises(AgentNotFound):
        merge.preview(initialized, "nobody")


def test_a_branch_is_told_ahead_behind_merged_with_its_files_diff_and_uncommitted_work(
    initialized: repo_mod.Repo,
) -> None:
    _, ws = spawn(initialized, "api")
    fresh = branches.status(initialized, "api")
    assert (fresh.ahead, fresh.behind, fresh.merged, fresh.files) == (0, 0, True, [])
    tip = commit(ws.path, "api.txt", "a\nb\n", "add endpoints")
    commit(initialized.root, "main.txt", "m\n", "main moves on")
    (ws.path / "scratch.txt").write_text("not committed\n")
    found = branches.status(initialized, "api")
    assert (found.branch, found.into, found.ahead, found.behind, found.merged) == ("feature/api", "main", 1, 1, False)
    last = found.last_commit
    assert last is not None and (last.sha, last.subject) == (tip, "add endpoints")
    assert [(f.path, f.added, f.removed) for f in found.files] == [("api.txt", 2, 0)]
    assert "+b" in found.diff and "main.txt" not in found.diff and not found.truncated
    assert found.uncommitted == ["scratch.txt"]
    cut = branches.status(initialized, "api", diff_limit=10)
    assert cut.truncated and len(cut.diff) == 10

    merge.merge(initialized, "api", cwd=initialized.root)
    assert branches.status(initialized, "api").merged


def test_an_agents_messages_both_ways_are_listed_with_their_states_and_none_is_read(
    initialized: repo_mod.Repo,
) -> None:
    spawn(initialized, "api")
    mailbox.send(initialized, "chessmaster", "api", "please add /logout")
    mailbox.send(initialized, "api", "chessmaster", "which database?")
    for _ in range(2):  # looking twice: still unread
        seen = correspondence.of(initialized, "api")
        assert [(m.sender, m.state) for m in seen.received] == [("chessmaster", "stored")]
        assert [(m.to, m.state) for m in seen.sent] == [("chessmaster", "stored")]
    assert mailbox.unread_count(initialized, "api") == 1
    mailbox.read(initialized, "chessmaster")
    mailbox.read(initialized, "chessmaster")  # the second read acknowledges nothing new; the first is handed
    assert correspondence.of(initialized, "api").sent[0].state in {"handed", "read"}
    with pytest.raises(AgentNotFound):
        correspondence.of(initialized, "nobody")


def test_fracta_merge_preview_says_what_merge_would_do_by_its_exit_code(
    initialized: repo_mod.Repo, cli: CliRunner
) -> None:
    root = initialized.root
    commit(root, "shared.txt", "one\n", "shared")
    _, ws = spawn(initialized, "api")
    commit(ws.path, "shared.txt", "theirs\n", "theirs")
    ok = cli("merge", "api", "--preview")
    assert ok.returncode == 0 and "would fast-forward main to feature/api" in ok.stdout, ok.stderr
    commit(root, "shared.txt", "mine\n", "mine")
    before = repo_state(root)
    conflict = cli("merge", "api", "--preview")
    assert conflict.returncode == 4 and "would conflict in: shared.txt" in conflict.stderr, conflict.stderr
    shape = cli("merge", "api", "--preview", "--json")
    assert shape.returncode == 4 and json.loads(shape.stdout)["would"] == "conflict"
    assert repo_state(root) == before


def test_the_page_marks_a_message_left_unread_past_the_alert_and_escapes_what_agents_wrote() -> None:
    from fracta.delivery import MessageState
    from fracta.ui import render

    def message(alert: str | None) -> MessageState:
        reason = "stored in b's inbox" + (f"; {alert}" if alert else "")
        return MessageState("m1", "a", "b", "2026-12-03T00:00:00Z", "<b>hi</b>", "stored", None, None, alert, reason)

    late = render._messages([message("unread for 400s while b runs")], "to")
    assert "delivery-late" in late and "unread for 400s while b runs" in late
    assert "&lt;b&gt;hi&lt;/b&gt;" in late and "<b>hi</b>" not in late
    assert "delivery-late" not in render._messages([message(None)], "to")
