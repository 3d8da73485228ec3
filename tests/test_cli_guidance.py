"""The CLI says what a new user needs: what init wrote and what next, what spawn leaves out, how
to keep work that kill refuses to drop, tables that fit, $FRACTA_AGENT as the default NAME."""

from __future__ import annotations

import io
import json
import os
import sys
import threading
from pathlib import Path

import pytest
from conftest import CliRunner, git
from lifecycle_helpers import cleanup, spawn, use_free_port, wait_status
from terminal import in_a_terminal

from fracta import agents
from fracta import repo as repo_mod
from fracta.cli import render, waiting


@pytest.fixture
def fr(initialized: repo_mod.Repo, monkeypatch: pytest.MonkeyPatch) -> repo_mod.Repo:
    """An initialized repo whose control plane uses a free port, with fracta's CLI on PATH."""
    use_free_port(initialized)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return initialized


def test_init_says_what_it_wrote_what_to_commit_and_what_to_run_next(repo_dir: Path, cli: CliRunner) -> None:
    result = cli("init")
    assert result.returncode == 0, result.stderr
    root = repo_dir.resolve()
    assert result.stdout == (
        f"initialized fracta in {root}\n"
        f"wrote {root / 'fracta.yaml'} (commented defaults)\n"
        f"installed the post-commit hook: {root / '.git' / 'hooks' / 'post-commit'}\n"
        ".mcp.json: created, with the fracta MCP server for claude\n"
        ".claude/settings.json: created, with fracta's tools, allowed, for claude\n"
        ".codex/config.toml: created, with the fracta MCP server for codex\n"
        "opencode.json: created, with the fracta MCP server for opencode\n"
        "commit fracta.yaml, .mcp.json, .claude/settings.json, .codex/config.toml, opencode.json: "
        "they let everyone who clones this repository use fracta\n"
        "  (not .fracta/: it holds tokens and this machine's agents; .git/info/exclude keeps it out of git)\n"
        "next:\n"
        "  fracta doctor                                        # check git, the AI CLIs and credentials\n"
        '  fracta spawn NAME --runtime claude --prompt "..."    # an agent on a task, in its own worktree\n'
        "  or start claude, codex or opencode here: they spawn and talk to agents through fracta's tools\n"
    )
    # What it says to commit is exactly what git sees as new.
    untracked = git(repo_dir, "status", "--porcelain", "--untracked-files=all").splitlines()
    assert sorted(line[3:] for line in untracked) == sorted(
        ["fracta.yaml", ".mcp.json", ".claude/settings.json", ".codex/config.toml", "opencode.json"]
    )


def test_init_without_wiring_names_only_fracta_yaml(repo_dir: Path, cli: CliRunner) -> None:
    result = cli("init", "--no-wire")
    assert result.returncode == 0, result.stderr
    assert "\ncommit fracta.yaml: they let everyone" in result.stdout
    assert "\nnext:\n  fracta doctor" in result.stdout


def test_name_defaults_to_fracta_agent_where_it_makes_sense(initialized: repo_mod.Repo, cli: CliRunner) -> None:
    assert cli("join", "api", "--intent", "design endpoints").returncode == 0
    assert cli("say", "api", "hello there").returncode == 0
    as_api = {"FRACTA_AGENT": "api"}
    inbox = json.loads(cli("inbox", "--json", env=as_api).stdout)
    assert [m["body"] for m in inbox["messages"]] == ["hello there"]
    assert cli("intent", env=as_api).stdout == "design endpoints\n"
    assert json.loads(cli("peek", "--json", env=as_api).stdout)["events"] == []
    # An agent's `say` is from itself.
    assert cli("say", "chessmaster", "done", env=as_api).returncode == 0
    told = json.loads(cli("inbox", "chessmaster", "--json").stdout)["messages"]
    assert [(m["from"], m["body"]) for m in told] == [("api", "done")]
    # A name given wins over $FRACTA_AGENT.
    assert cli("join", "web", "--intent", "the form").returncode == 0
    assert cli("intent", "web", env=as_api).stdout == "the form\n"


def test_destructive_commands_never_take_fracta_agent(initialized: repo_mod.Repo, cli: CliRunner) -> None:
    assert cli("join", "api").returncode == 0
    for command in ("kill", "merge"):
        result = cli(command, env={"FRACTA_AGENT": "api"})
        assert result.returncode == 2
        assert "Missing argument 'NAME'." in result.stderr
    assert agents.exists(initialized, "api")


def test_no_name_and_no_fracta_agent_says_how_to_give_one(initialized: repo_mod.Repo, cli: CliRunner) -> None:
    result = cli("inbox")
    assert result.returncode == 2
    assert result.stderr == (
        "error: which agent? NAME is missing and $FRACTA_AGENT is not set\n"
        "hint: give the agent's name (fracta list shows them); in an agent's own shell, $FRACTA_AGENT names it\n"
    )


def test_spawn_warns_that_uncommitted_changes_stay_behind(fr: repo_mod.Repo, cli: CliRunner) -> None:
    root = fr.root
    with cleanup(fr):
        clean = cli("spawn", "first", "--", "true")
        assert clean.returncode == 0, clean.stderr
        assert "warning" not in clean.stderr
        (root / "README.md").write_text("# project, edited\n")
        (root / "scratch.txt").write_text("untracked: not the worktree's business either way\n")
        dirty = cli("spawn", "second", "--", "true")
        assert dirty.returncode == 0, dirty.stderr
        assert dirty.stderr.endswith(
            f"warning: {root} has uncommitted changes (README.md); the agent's worktree starts from the "
            "last commit (HEAD) without them: commit them first if the agent needs them\n"
        )
        based = cli("spawn", "third", "--base", "main", "--", "true")
        assert "starts from --base main without them" in based.stderr
        elsewhere = cli("spawn", "fourth", "--workspace", str(root.parent / "plain"), "--", "true")
        assert elsewhere.returncode == 0, elsewhere.stderr
        assert "warning" not in elsewhere.stderr
        wt = Path(agents.load(fr, "second").workspace or "")
        assert (wt / "README.md").read_text() == "# project\n"


def test_kill_hints_fit_the_work_at_stake_and_force_says_it_once(fr: repo_mod.Repo, cli: CliRunner) -> None:
    with cleanup(fr):
        spawn(cli, "drafts", "sh", "-c", "echo draft > draft.txt")
        spawn(cli, "commits", "sh", "-c", "echo work > w.txt && git add w.txt && git commit -qm work")
        wait_status(fr, "drafts", "done")
        wait_status(fr, "commits", "done")
        drafts_wt = agents.load(fr, "drafts").workspace

        uncommitted = cli("kill", "drafts")
        assert uncommitted.returncode == 5
        assert uncommitted.stderr == (
            "error: agent 'drafts' has work that exists nowhere else: 1 uncommitted file(s): draft.txt\n"
            f"hint: commit them in its worktree ({drafts_wt}) and merge it (fracta merge drafts), or run "
            "fracta kill drafts --force to save it under refs/fracta/archive/drafts/ and remove the agent\n"
        )
        assert "merge it first" not in uncommitted.stderr

        unmerged = cli("kill", "commits")
        assert unmerged.returncode == 5
        assert unmerged.stderr.endswith(
            "hint: merge it first (fracta merge commits), or run fracta kill commits --force "
            "to save it under refs/fracta/archive/commits/ and remove the agent\n"
        )

        forced = cli("kill", "drafts", "--force")
        assert forced.returncode == 0, forced.stderr
        lines = forced.stdout.splitlines()
        assert lines[0] == "killed drafts"
        assert lines[1].startswith("the work of drafts is saved under refs/fracta/archive/drafts/")
        assert forced.stdout.count("saved under") == 1
        assert forced.stdout.count("refs/fracta/archive/drafts/") == 2  # where it is, and `git branch` from it


def test_list_fits_its_rows_to_columns_on_a_terminal(initialized: repo_mod.Repo, cli: CliRunner) -> None:
    intent = "design the REST endpoints for login, logout and sessions, with tests for each"
    assert cli("join", "api", "--intent", intent).returncode == 0
    assert cli("join", "reviewer-of-everything").returncode == 0
    fitted = in_a_terminal(["list"], initialized.root, {**os.environ, "COLUMNS": "80"})
    assert fitted == (
        "NAME                    STATE    STATUS   UNREAD  TOKENS  COST  BRANCH  INTENT\n"
        "api                     working  running  0       -       -     -       design …\n"
        "reviewer-of-everything  working  running  0       -       -     -       -\n"
        "agents 2: 2 working · - tokens · -\n"
    )  # 80 columns: the intent cut short, and the runtime column left out
    assert max(len(line) for line in fitted.splitlines()) == 80
    narrow = in_a_terminal(["list"], initialized.root, {**os.environ, "COLUMNS": "40"})
    assert "reviewer-of-everything  " in narrow  # too narrow even cut: the name is never cut
    piped = cli("list", env={"COLUMNS": "40"})  # not a terminal: whole rows, for grep and friends
    assert f"  {intent}\n" in piped.stdout


def test_a_table_cuts_its_columns_in_order_and_no_further_than_asked() -> None:
    rows = [["alpha", "a rather long status", "a very long intent indeed"]]
    shown = render.table(rows, ["name", "status", "intent"], width=30, shrink=[(2, 8), (1, 10)])
    assert shown.splitlines() == ["NAME   STATUS         INTENT", "alpha  a rather lon…  a very …"]
    assert render.table(rows, ["name", "status", "intent"]) == (
        "NAME   STATUS                INTENT\nalpha  a rather long status  a very long intent indeed"
    )


class Recorder(io.StringIO):
    """A stream that says when something was written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.written = threading.Event()

    def write(self, text: str) -> int:
        count = super().write(text)
        self.written.set()
        return count


def test_a_slow_step_gets_one_line_saying_what_it_waits_for() -> None:
    out = Recorder()
    with waiting.notice("waiting for the control plane to start...", after=0.0, stream=out):
        assert out.written.wait(timeout=30)  # the step "takes long": it ends only once told
    assert out.getvalue() == "waiting for the control plane to start...\n"


def test_a_quick_step_says_nothing() -> None:
    out = Recorder()
    with waiting.notice("never shown", after=3600, stream=out):
        pass
    assert out.getvalue() == ""


def test_no_notice_when_stderr_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_timer(*args: object, **kwargs: object) -> None:
        raise AssertionError("a timer was started for a stderr that is not a terminal")

    monkeypatch.setattr(waiting.threading, "Timer", no_timer)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    with waiting.notice("not shown"):
        pass
    assert sys.stderr.getvalue() == ""  # type: ignore[attr-defined]
