"""Commits recorded by the control plane itself: real git, a real control plane, real `command` agents.

The hook (tests/test_hooks.py) is the fast path; these tests take it away (no hook at all, or a
.fracta/ that the agent's commit cannot write, as in Codex's sandbox) and check that every commit
is still recorded exactly once, and that commits outside an agent's branch are alerts.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CliRunner, git
from lifecycle_helpers import cleanup, output_lines, script, spawn, use_free_port, wait_for, wait_status

from fracta import agents, commits, events, mailbox
from fracta import repo as repo_mod
from fracta.control import daemon

# The agent's shell for its commits: no fracta on PATH (as under Codex's `bash -lc`).
BARE_PATH = "/usr/local/bin:/usr/bin:/bin"
NO_HOOK = "-c core.hooksPath=/dev/null"  # git runs no hook at all
# Codex's sandbox in miniature: .fracta/ is read-only for the commit (and for its hook).
READ_ONLY_STATE = 'unshare -m sh -c \'mount --bind -o ro "$FRACTA_HOME" "$FRACTA_HOME" && exec "$@"\' sh'


def can_make_state_read_only() -> bool:
    probe = subprocess.run(["unshare", "-m", "mount", "--bind", "-o", "ro", "/", "/"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.fixture
def fr(initialized: repo_mod.Repo, monkeypatch: pytest.MonkeyPatch) -> repo_mod.Repo:
    """An initialized repo whose control plane uses a free port, with fracta's CLI on PATH."""
    use_free_port(initialized)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return initialized


def commit_events(r: repo_mod.Repo, kind: str = "agent.commit") -> list[dict[str, object]]:
    return [e.data for e in events.read(r) if e.data["event"] == kind]


def chessmaster_bodies(r: repo_mod.Repo) -> list[str]:
    return [m.body for m in mailbox.read(r, "chessmaster", include_read=True).messages]


def recorded(r: repo_mod.Repo, name: str, sha: str) -> bool:
    return agents.load(r, name).last_commit == sha


def branch_tip(r: repo_mod.Repo, branch: str) -> str:
    return git(r.root, "rev-parse", f"refs/heads/{branch}")


def agent_job(r: repo_mod.Repo, body: str) -> None:
    """job.sh, committed on main, so that every agent's worktree has it."""
    script(r.root, "job.sh", body)
    git(r.root, "add", "job.sh")
    git(r.root, "commit", "-q", "-m", "job script")


@pytest.mark.parametrize("blocked", ["no hook", "read-only .fracta"])
def test_a_commit_whose_hook_cannot_record_it_is_recorded_once_by_the_control_plane(
    fr: repo_mod.Repo, cli: CliRunner, blocked: str
) -> None:
    if blocked == "read-only .fracta" and not can_make_state_read_only():
        pytest.skip("this machine cannot make a read-only bind mount (unshare -m)")
    wrap = f"git {NO_HOOK}" if blocked == "no hook" else f"{READ_ONLY_STATE} git"
    agent_job(fr, f'echo work > work.txt\ngit add work.txt\nPATH={BARE_PATH} {wrap} commit -q -m "real work"\n')
    with cleanup(fr):
        spawn(cli, "mul", "sh", "job.sh")
        wait_status(fr, "mul", "done")
        sha = branch_tip(fr, "feature/mul")
        assert git(fr.root, "log", "-1", "--format=%s", sha) == "real work"
        wait_for("the control plane to record the commit", lambda: recorded(fr, "mul", sha))
        short = git(fr.root, "rev-parse", "--short", sha)
        notice = f"mul committed {short} on feature/mul: real work"
        wait_for("the notice", lambda: notice in chessmaster_bodies(fr))
        assert [(e["commit"], e["by"]) for e in commit_events(fr)] == [(sha, "watcher")]
        assert f"{sha[:10]} real work" in fr.progress_path.read_text()
        listed = cli("list", "--json")
        assert f'"last_commit": "{sha}"' in listed.stdout
        if blocked == "read-only .fracta":  # the hook tried, failed, and said so where it could
            said = [line for line in output_lines(fr, "mul") if "not recorded" in line]
            assert said and "Read-only file system" in said[0]
        # A restart reconciles everything: it records the next commit and nothing twice.
        daemon.down(fr)
        wt = Path(str(agents.load(fr, "mul").workspace))
        git(wt, "-c", "core.hooksPath=/dev/null", "commit", "-q", "--allow-empty", "-m", "after the restart")
        assert cli("up").returncode == 0
        wait_for("the next commit", lambda: recorded(fr, "mul", branch_tip(fr, "feature/mul")))
        assert chessmaster_bodies(fr).count(notice) == 1
        assert [e["commit"] for e in commit_events(fr)] == [sha, branch_tip(fr, "feature/mul")]


def test_a_commit_seen_by_both_the_hook_and_the_watcher_is_recorded_once(fr: repo_mod.Repo, cli: CliRunner) -> None:
    agent_job(
        fr,
        'for n in 1 2 3 4 5 6; do echo "$n" > "n$n.txt"; git add "n$n.txt"; git commit -q -m "step $n"; done\n'
        f'echo last > last.txt\ngit add last.txt\ngit {NO_HOOK} commit -q -m "no hook"\n',
    )
    with cleanup(fr):
        spawn(cli, "mul", "sh", "job.sh")
        wait_status(fr, "mul", "done")
        tip = branch_tip(fr, "feature/mul")
        # The last commit had no hook: once the watcher has recorded it, it has looked at all of them.
        wait_for("the watcher to record the hookless commit", lambda: recorded(fr, "mul", tip))
        shas = git(fr.root, "rev-list", "--reverse", f"main..{tip}").split()
        assert len(shas) == 7
        seen = commit_events(fr)
        assert sorted(str(e["commit"]) for e in seen) == sorted(shas)  # each once
        assert seen[-1]["by"] == "watcher" and {e["by"] for e in seen} <= {"hook", "watcher"}
        listed = [line for body in chessmaster_bodies(fr) for line in body.splitlines()]
        for sha in shas:  # each commit in exactly one notice
            short = git(fr.root, "rev-parse", "--short", sha)
            assert sum(short in line for line in listed) == 1, (short, listed)


def test_an_agent_committing_on_main_in_the_users_checkout_is_an_alert(fr: repo_mod.Repo, cli: CliRunner) -> None:
    agent_job(
        fr,
        'cd "$1"\necho stray > stray.txt\ngit add stray.txt\n'
        f'PATH={BARE_PATH} git commit -q -m "committed in the wrong checkout"\n',
    )
    with cleanup(fr):
        spawn(cli, "mul", "sh", "job.sh", str(fr.root))
        wait_status(fr, "mul", "done")
        sha = git(fr.root, "rev-parse", "HEAD")
        assert git(fr.root, "log", "-1", "--format=%s") == "committed in the wrong checkout"
        short = git(fr.root, "rev-parse", "--short", "HEAD")
        alert = (
            f"mul committed {short} on main in the main checkout ({fr.root}), "
            "not on its own branch feature/mul: committed in the wrong checkout"
        )
        assert chessmaster_bodies(fr) == [f"ALERT: {alert}"]
        [message] = mailbox.read(fr, "chessmaster", include_read=True).messages
        assert (message.sender, message.subject) == ("mul", commits.ALERT_SUBJECT)
        [event] = commit_events(fr, "agent.commit.foreign")
        assert (event["agent"], event["branch"], event["commit"], event["by"]) == ("mul", "main", sha, "hook")
        assert alert in fr.progress_path.read_text().split("## Alerts")[1]
        assert commit_events(fr) == []
        assert agents.load(fr, "mul").last_commit is None


@pytest.mark.parametrize("hook", [True, False], ids=["hook", "no-hook"])
def test_an_agent_committing_on_another_branch_in_its_worktree_is_an_alert(
    fr: repo_mod.Repo, cli: CliRunner, hook: bool
) -> None:
    gate = fr.root.parent / "go-back"
    git_cmd = "git" if hook else f"git {NO_HOOK}"
    agent_job(
        fr,
        f'git switch -q -c side\necho side > side.txt\ngit add side.txt\n{git_cmd} commit -q -m "off its branch"\n'
        f"while [ ! -e {gate} ]; do sleep 0.05; done\n"
        f'git switch -q feature/mul\necho mine > mine.txt\ngit add mine.txt\n{git_cmd} commit -q -m "back home"\n',
    )
    with cleanup(fr):
        spawn(cli, "mul", "sh", "job.sh")
        wait_for("the side commit", lambda: git(fr.root, "branch", "--list", "side"))
        wait_for("the commit on side", lambda: branch_tip(fr, "side") != branch_tip(fr, "main"))
        sha = branch_tip(fr, "side")
        short = git(fr.root, "rev-parse", "--short", sha)
        worktree = Path(str(agents.load(fr, "mul").workspace)).resolve()
        alert = f"ALERT: mul committed {short} on side in {worktree}, not on its own branch feature/mul: off its branch"
        wait_for("the alert", lambda: alert in chessmaster_bodies(fr))
        gate.touch()
        wait_status(fr, "mul", "done")
        home = branch_tip(fr, "feature/mul")
        wait_for("the commit back on its branch", lambda: recorded(fr, "mul", home))
        [event] = commit_events(fr, "agent.commit.foreign")
        assert (event["branch"], event["commit"]) == ("side", sha)
        assert event["by"] in ({"hook", "watcher"} if hook else {"watcher"})  # whichever came first
        assert [e["commit"] for e in commit_events(fr)] == [home]  # the side commit is not its work
        assert sum(body.startswith("ALERT") for body in chessmaster_bodies(fr)) == 1


def test_commits_made_while_no_control_plane_ran_are_recorded_at_its_next_start(
    fr: repo_mod.Repo, cli: CliRunner
) -> None:
    fr.config_path.write_text(fr.config_path.read_text().replace("subscribers: {}", "subscribers: {web: [api]}"))
    wt = fr.worktrees_dir / "api"
    git(fr.root, "worktree", "add", "-q", str(wt), "-b", "feature/api")
    assert cli("join", "api", cwd=wt).returncode == 0
    assert cli("join", "web").returncode == 0
    for n in (1, 2, 3):
        (wt / f"f{n}.txt").write_text(f"{n}\n")
        git(wt, "add", f"f{n}.txt")
        git(wt, "-c", "core.hooksPath=/dev/null", "commit", "-q", "-m", f"offline {n}")
    shas = git(wt, "rev-list", "--reverse", "main..HEAD").split()
    assert agents.load(fr, "api").last_commit is None and chessmaster_bodies(fr) == []
    with cleanup(fr):
        assert cli("up").returncode == 0
        wait_for("the commits to be recorded", lambda: recorded(fr, "api", shas[-1]))
        shorts = [git(wt, "rev-parse", "--short", s) for s in shas]
        listing = "\n".join(f"  {short} offline {n}" for n, short in enumerate(shorts, start=1))
        assert chessmaster_bodies(fr) == [f"api committed 3 commits on feature/api:\n{listing}"]
        assert [m.body for m in mailbox.read(fr, "web").messages] == chessmaster_bodies(fr)
        assert [(e["commit"], e["by"]) for e in commit_events(fr)] == [(s, "watcher") for s in shas]


def test_merging_main_into_an_agents_branch_records_only_its_own_commits(
    initialized: repo_mod.Repo, cli: CliRunner
) -> None:
    r = initialized
    wt = r.worktrees_dir / "api"
    git(r.root, "worktree", "add", "-q", str(wt), "-b", "feature/api")
    assert cli("join", "api", cwd=wt).returncode == 0
    no_hook = ("-c", "core.hooksPath=/dev/null")
    (r.root / "main.txt").write_text("main\n")
    git(r.root, "add", "main.txt")
    git(r.root, "commit", "-q", "-m", "the user's work on main")
    git(wt, *no_hook, "merge", "-q", "main")  # a fast-forward: nothing of its own
    assert commits.check(r, "api", by="watcher").commits == ()
    (wt / "api.txt").write_text("api\n")
    git(wt, "add", "api.txt")
    git(wt, *no_hook, "commit", "-q", "-m", "its own work")
    (r.root / "more.txt").write_text("more\n")
    git(r.root, "add", "more.txt")
    git(r.root, "commit", "-q", "-m", "more work on main")
    git(wt, *no_hook, "merge", "-q", "--no-edit", "main")
    noticed = commits.check(r, "api", by="watcher")
    assert [c.subject for c in noticed.commits] == ["its own work", "Merge branch 'main' into feature/api"]
    assert noticed.foreign == ()
    assert commits.check(r, "api", by="watcher").commits == ()  # recorded once
    assert agents.load(r, "api").last_commit == git(wt, "rev-parse", "HEAD")


def test_a_rebased_branch_records_its_new_commits_and_a_detached_commit_is_an_alert(
    initialized: repo_mod.Repo, cli: CliRunner
) -> None:
    r = initialized
    wt = r.worktrees_dir / "api"
    git(r.root, "worktree", "add", "-q", str(wt), "-b", "feature/api")
    assert cli("join", "api", cwd=wt).returncode == 0
    no_hook = ("-c", "core.hooksPath=/dev/null")
    (wt / "api.txt").write_text("api\n")
    git(wt, "add", "api.txt")
    git(wt, *no_hook, "commit", "-q", "-m", "its work")
    assert [c.subject for c in commits.check(r, "api", by="watcher").commits] == ["its work"]
    (r.root / "main.txt").write_text("main\n")
    git(r.root, "add", "main.txt")
    git(r.root, "commit", "-q", "-m", "main moves on")
    git(wt, *no_hook, "rebase", "-q", "main")
    rebased = commits.check(r, "api", by="watcher")
    assert [c.sha for c in rebased.commits] == [git(wt, "rev-parse", "HEAD")]
    assert rebased.foreign == ()  # the rebase's picks ended on its branch
    git(wt, "checkout", "-q", "--detach")
    git(wt, *no_hook, "commit", "-q", "--allow-empty", "-m", "on no branch")
    loose = git(wt, "rev-parse", "HEAD")
    noticed = commits.check(r, "api", by="watcher")
    assert [(f.commit.sha, f.branch) for f in noticed.foreign] == [(loose, None)]
    assert commits.check(r, "api", by="watcher").foreign == ()  # reported once
    [alert] = [b for b in chessmaster_bodies(r) if b.startswith("ALERT")]
    assert f"committed {git(wt, 'rev-parse', '--short', loose)} on a detached HEAD in {wt.resolve()}" in alert


def test_a_commit_seen_halfway_through_gits_ref_update_is_never_an_alert(
    initialized: repo_mod.Repo, cli: CliRunner
) -> None:
    """git appends the HEAD reflog entry before it moves the branch: a pass in between must wait."""
    r = initialized
    wt = r.worktrees_dir / "api"
    git(r.root, "worktree", "add", "-q", str(wt), "-b", "feature/api")
    assert cli("join", "api", cwd=wt).returncode == 0
    assert commits.check(r, "api", by="watcher").commits == ()
    (wt / "api.txt").write_text("api\n")
    git(wt, "add", "api.txt")
    git(wt, "-c", "core.hooksPath=/dev/null", "commit", "-q", "-m", "its work")
    made = git(wt, "rev-parse", "HEAD")
    # Put the branch's ref and reflog back as they were while git was still writing them.
    assert r.git_common_dir is not None
    ref = r.git_common_dir / "refs" / "heads" / "feature" / "api"
    branch_log = r.git_common_dir / "logs" / "refs" / "heads" / "feature" / "api"
    whole_ref, whole_log = ref.read_text(), branch_log.read_text()
    ref.write_text(git(r.root, "rev-parse", "main") + "\n")
    branch_log.write_text("".join(whole_log.splitlines(keepends=True)[:-1]))
    halfway = commits.check(r, "api", by="watcher")
    assert (halfway.commits, halfway.foreign) == ((), ())
    ref.write_text(whole_ref)
    branch_log.write_text(whole_log)
    done = commits.check(r, "api", by="watcher")
    assert [c.sha for c in done.commits] == [made] and done.foreign == ()
    assert commit_events(r, "agent.commit.foreign") == []
    assert "ALERT" not in "".join(chessmaster_bodies(r))
