"""The post-commit hook, exercised by real `git commit`s in real linked worktrees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import filelock
import pytest
from conftest import CliRunner, git

from fracta import agents, events, hooks
from fracta import repo as repo_mod

VENV_BIN = Path(sys.executable).parent
# Enough for git and the hook's sh, and no fracta: the venv's bin is what adds it.
BARE_PATH = "/usr/local/bin:/usr/bin:/bin"


def with_fracta() -> str:
    assert (VENV_BIN / "fracta").exists()
    return f"{VENV_BIN}:{BARE_PATH}"


def commit(
    cwd: Path, subject: str, *, path: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Make a real commit in `cwd` with the hook running under the given PATH."""
    name = "".join(c if c.isalnum() else "-" for c in subject)
    (cwd / f"{name}.txt").write_text(subject + "\n")
    git(cwd, "add", f"{name}.txt")
    return subprocess.run(
        ["git", "commit", "-q", "-m", subject],
        cwd=cwd,
        env={**os.environ, "PATH": path or with_fracta(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def agent_worktree(repo: repo_mod.Repo, cli: CliRunner, name: str) -> Path:
    """A worktree at .fracta/worktrees/<name> on feature/<name>, with the agent joined from it."""
    wt = repo.worktrees_dir / name
    git(repo.root, "worktree", "add", "-q", str(wt), "-b", f"feature/{name}")
    joined = cli("join", name, cwd=wt)
    assert joined.returncode == 0, joined.stderr
    return wt


def inbox_bodies(repo: repo_mod.Repo, name: str) -> list[str]:
    box = repo.inbox_dir(name) / "new"
    return [(box / f).read_text().partition("\n\n")[2] for f in sorted(os.listdir(box))]


def write_config(repo: repo_mod.Repo, hooks_section: str) -> None:
    repo.config_path.write_text(f"hooks:\n{hooks_section}")


def test_a_commit_in_an_agent_worktree_tells_the_chessmaster_and_updates_progress(
    initialized: repo_mod.Repo, cli: CliRunner
) -> None:
    wt = agent_worktree(initialized, cli, "api")
    done = commit(wt, "add the endpoint")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    sha = git(wt, "rev-parse", "HEAD")
    short = git(wt, "rev-parse", "--short", "HEAD")
    assert inbox_bodies(initialized, "chessmaster") == [f"api committed {short} on feature/api: add the endpoint"]
    agent = agents.load(initialized, "api")
    assert (agent.last_commit, agent.last_commit_subject) == (sha, "add the endpoint")
    assert f"{sha[:10]} add the endpoint" in initialized.progress_path.read_text()
    recorded = [e.data for e in events.read(initialized) if e.data["event"] == "agent.commit"]
    assert recorded == [recorded[0]] and recorded[0]["commit"] == sha and recorded[0]["agent"] == "api"


def test_a_subscriber_hears_of_a_peers_commit_and_the_chessmaster_can_opt_out(
    initialized: repo_mod.Repo, cli: CliRunner
) -> None:
    write_config(initialized, "  notify_chessmaster: false\n  subscribers: {web: [api], docs: ['*'], gone: [api]}\n")
    api = agent_worktree(initialized, cli, "api")
    agent_worktree(initialized, cli, "web")
    agent_worktree(initialized, cli, "docs")
    assert commit(api, "new route").returncode == 0
    short = git(api, "rev-parse", "--short", "HEAD")
    expected = [f"api committed {short} on feature/api: new route"]
    assert inbox_bodies(initialized, "web") == expected
    assert inbox_bodies(initialized, "docs") == expected
    assert inbox_bodies(initialized, "api") == []
    assert inbox_bodies(initialized, "chessmaster") == []
    assert "new route" in initialized.progress_path.read_text()


def test_commits_are_attributed_by_fracta_agent_then_worktree_then_branch(
    initialized: repo_mod.Repo, cli: CliRunner, tmp_path: Path
) -> None:
    agent_worktree(initialized, cli, "api")
    elsewhere = tmp_path / "elsewhere"
    git(initialized.root, "worktree", "add", "-q", str(elsewhere), "-b", "feature/api-two")
    assert cli("join", "api-two", cwd=elsewhere).returncode == 0
    assert commit(elsewhere, "by branch").returncode == 0
    scratch = tmp_path / "scratch"
    git(initialized.root, "worktree", "add", "-q", str(scratch), "-b", "scratch")
    assert commit(scratch, "nobody's").returncode == 0
    assert commit(scratch, "declared", env={"FRACTA_AGENT": "api"}).returncode == 0
    bodies = inbox_bodies(initialized, "chessmaster")
    assert [b.split(" committed ")[0] for b in bodies] == ["api-two", "ALERT: api"]
    short = git(scratch, "rev-parse", "--short", "HEAD")
    assert (
        bodies[1]
        == f"ALERT: api committed {short} on scratch in {scratch}, not on its own branch feature/api: declared"
    )
    assert agents.load(initialized, "api").last_commit is None  # not its commit on its branch


def test_a_commit_on_another_branch_in_an_agents_worktree_is_an_alert_once(
    initialized: repo_mod.Repo, cli: CliRunner
) -> None:
    wt = agent_worktree(initialized, cli, "api")
    git(wt, "switch", "-q", "-c", "side")
    assert commit(wt, "off its branch").returncode == 0
    short = git(wt, "rev-parse", "--short", "HEAD")
    git(wt, "switch", "-q", "feature/api")
    assert commit(wt, "back home").returncode == 0
    assert inbox_bodies(initialized, "chessmaster") == [
        f"ALERT: api committed {short} on side in {wt.resolve()}, not on its own branch feature/api: off its branch",
        f"api committed {git(wt, 'rev-parse', '--short', 'HEAD')} on feature/api: back home",
    ]
    assert [e.data["by"] for e in events.read(initialized) if e.data["event"].startswith("agent.commit")] == [
        "hook",
        "hook",
    ]


def test_the_users_own_commits_in_the_main_worktree_do_nothing(initialized: repo_mod.Repo, cli: CliRunner) -> None:
    agent_worktree(initialized, cli, "api")
    done = commit(initialized.root, "chessmaster's own work")
    assert done.returncode == 0, done.stderr
    assert inbox_bodies(initialized, "chessmaster") == []
    assert agents.load(initialized, "api").last_commit is None
    assert "## Alerts" not in initialized.progress_path.read_text()


def test_an_agents_commit_in_the_main_worktree_is_an_alert(initialized: repo_mod.Repo, cli: CliRunner) -> None:
    agent_worktree(initialized, cli, "api")
    done = commit(initialized.root, "wrong place", env={"FRACTA_AGENT": "api"})
    assert done.returncode == 0, done.stderr
    short = git(initialized.root, "rev-parse", "--short", "HEAD")
    expected = (
        f"api committed {short} on main in the main checkout ({initialized.root}), "
        "not on its own branch feature/api: wrong place"
    )
    assert inbox_bodies(initialized, "chessmaster") == [f"ALERT: {expected}"]
    assert agents.load(initialized, "api").last_commit is None
    assert expected in initialized.progress_path.read_text().split("## Alerts")[1]
    [alert] = [e.data for e in events.read(initialized) if e.data["event"] == "agent.commit.foreign"]
    assert (alert["agent"], alert["branch"], alert["commit"]) == (
        "api",
        "main",
        git(initialized.root, "rev-parse", "HEAD"),
    )


def test_an_agent_joined_in_the_main_checkout_without_a_branch_records_its_commits_there(
    initialized: repo_mod.Repo, cli: CliRunner
) -> None:
    assert cli("join", "solo").returncode == 0  # its workspace is the main checkout
    assert commit(initialized.root, "solo's work", env={"FRACTA_AGENT": "solo"}).returncode == 0
    short = git(initialized.root, "rev-parse", "--short", "HEAD")
    assert inbox_bodies(initialized, "chessmaster") == [f"solo committed {short} on main: solo's work"]
    assert agents.load(initialized, "solo").last_commit == git(initialized.root, "rev-parse", "HEAD")


def test_a_commit_is_recorded_when_fracta_is_not_on_path(initialized: repo_mod.Repo, cli: CliRunner) -> None:
    wt = agent_worktree(initialized, cli, "api")
    done = commit(wt, "offline", path=BARE_PATH)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert git(wt, "log", "-1", "--format=%s") == "offline"
    short = git(wt, "rev-parse", "--short", "HEAD")
    assert inbox_bodies(initialized, "chessmaster") == [f"api committed {short} on feature/api: offline"]


def test_a_commit_succeeds_with_fracta_home_pointing_at_garbage(
    initialized: repo_mod.Repo, cli: CliRunner, tmp_path: Path
) -> None:
    wt = agent_worktree(initialized, cli, "api")
    garbage = tmp_path / "garbage"
    garbage.write_text("not a folder\n")
    done = commit(wt, "lost home", env={"FRACTA_HOME": str(garbage)})
    assert done.returncode == 0, done.stderr
    assert len(done.stderr.splitlines()) <= 1
    assert git(wt, "log", "-1", "--format=%s") == "lost home"


def test_a_commit_succeeds_with_a_corrupt_agent_record_and_says_so_in_one_line(
    initialized: repo_mod.Repo, cli: CliRunner
) -> None:
    wt = agent_worktree(initialized, cli, "api")
    agents.record_path(initialized, "api").write_text("{ torn")
    done = commit(wt, "still fine")
    assert done.returncode == 0
    assert git(wt, "log", "-1", "--format=%s") == "still fine"
    assert len(done.stderr.splitlines()) == 1
    assert "not recorded" in done.stderr and "corrupt record" in done.stderr
    assert '"hook.failed"' in (initialized.logs_dir / "hooks.log").read_text()


def hook_failures(repo: repo_mod.Repo) -> list[dict[str, object]]:
    log = repo.logs_dir / "hooks.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [d for d in map(json.loads, lines) if d["event"] == "hook.failed"]


def test_a_broken_fracta_install_fails_the_hook_loudly_but_not_the_commit(
    initialized: repo_mod.Repo, cli: CliRunner, tmp_path: Path
) -> None:
    wt = agent_worktree(initialized, cli, "api")
    broken = tmp_path / "broken-python"
    broken.write_text(
        "#!/bin/sh\necho 'Traceback (most recent call last):' >&2\necho 'ImportError: broken \"install\"' >&2\nexit 1\n"
    )
    broken.chmod(0o755)
    hooks.install(initialized, python=str(broken))
    done = commit(wt, "broken tool", env={"FRACTA_AGENT": "api"})
    assert done.returncode == 0
    assert git(wt, "log", "-1", "--format=%s") == "broken tool"
    said = 'ImportError: broken "install"'
    assert done.stderr.splitlines() == [f"fracta post-commit hook failed (the commit is fine): {said}"]
    [failure] = hook_failures(initialized)
    assert (failure["error"], failure["agent"], failure["level"]) == (said, "api", "warning")


def test_a_hook_whose_python_is_gone_falls_back_to_path_then_says_so(
    initialized: repo_mod.Repo, cli: CliRunner, tmp_path: Path
) -> None:
    wt = agent_worktree(initialized, cli, "api")
    gone = tmp_path / "removed-venv" / "bin" / "python"
    hooks.install(initialized, python=str(gone))
    assert commit(wt, "through PATH", path=with_fracta()).returncode == 0
    assert inbox_bodies(initialized, "chessmaster")[-1].endswith("on feature/api: through PATH")
    done = commit(wt, "nowhere", path=BARE_PATH)
    assert done.returncode == 0
    assert git(wt, "log", "-1", "--format=%s") == "nowhere"
    assert done.stderr.splitlines() == [
        f"fracta post-commit hook failed (the commit is fine): fracta not found: {gone} is gone "
        "and no fracta is on PATH (run: fracta hooks install)"
    ]
    assert [f["error"] for f in hook_failures(initialized)] == [done.stderr.split(": ", 1)[1].strip()]
    assert len(inbox_bodies(initialized, "chessmaster")) == 1


def test_the_hook_command_gives_up_on_a_stuck_lock_and_still_exits_zero(
    initialized: repo_mod.Repo, cli: CliRunner
) -> None:
    wt = agent_worktree(initialized, cli, "api")
    git(wt, "-c", "core.hooksPath=/dev/null", "commit", "-q", "--allow-empty", "-m", "empty")  # no hook
    held = filelock.FileLock(str(initialized.agent_dir("api") / "agent.lock"), thread_local=False)
    with held:
        result = cli("hook", "post-commit", "--timeout", "0.5", cwd=wt)
    assert result.returncode == 0
    assert "not recorded by the hook: gave up after 0.5s" in result.stderr
    assert agents.load(initialized, "api").last_commit is None


def test_an_existing_hook_keeps_running_and_is_chained_exactly_once(repo_dir: Path, cli: CliRunner) -> None:
    hooks_dir = repo_dir / ".git" / "hooks"
    hooks_dir.mkdir(exist_ok=True)
    marker = repo_dir.parent / "marker"
    theirs = f'#!/bin/sh\necho "ran $#" >> "{marker}"\nexit 3\n'
    (hooks_dir / "post-commit").write_text(theirs)
    (hooks_dir / "post-commit").chmod(0o755)
    first = cli("init")
    assert first.returncode == 0, first.stderr
    assert "earlier post-commit hook still runs first" in first.stdout
    assert "already installed" in cli("hooks", "install").stdout
    assert "already installed" in cli("init").stdout
    (hooks_dir / "post-commit").write_text(hooks.script() + "# an older fracta's hook\n")
    assert "updated the post-commit hook" in cli("hooks", "install").stdout
    assert (hooks_dir / "post-commit").read_text() == hooks.script()
    assert (hooks_dir / hooks.CHAINED).read_text() == theirs
    repo = repo_mod.find(repo_dir, env={})
    wt = agent_worktree(repo, cli, "api")
    assert commit(wt, "in a worktree").returncode == 0
    assert commit(repo_dir, "in main").returncode == 0
    assert marker.read_text() == "ran 0\nran 0\n"
    assert len(inbox_bodies(repo, "chessmaster")) == 1


def test_a_foreign_hook_is_not_moved_over_an_existing_chained_hook(repo_dir: Path, cli: CliRunner) -> None:
    hooks_dir = repo_dir / ".git" / "hooks"
    hooks_dir.mkdir(exist_ok=True)
    (hooks_dir / "post-commit").write_text("#!/bin/sh\n# another tool's hook\n")
    (hooks_dir / hooks.CHAINED).write_text("#!/bin/sh\n# kept from before\n")
    result = cli("hooks", "install")
    assert result.returncode == 5
    assert "combine them by hand" in result.stderr
    assert (hooks_dir / "post-commit").read_text() == "#!/bin/sh\n# another tool's hook\n"


def test_an_absolute_core_hooks_path_outside_the_repo_gets_the_hook(
    repo_dir: Path, cli: CliRunner, tmp_path: Path
) -> None:
    shared = tmp_path / "shared-hooks"
    git(repo_dir, "config", "core.hooksPath", str(shared))
    first = cli("init")
    assert first.returncode == 0, first.stderr
    assert "core.hooksPath is set" in first.stdout
    assert (shared / "post-commit").read_text() == hooks.script()
    assert not (repo_dir / ".git" / "hooks" / "post-commit").exists()
    repo = repo_mod.find(repo_dir, env={})
    wt = agent_worktree(repo, cli, "api")
    assert commit(wt, "through the shared folder").returncode == 0
    assert len(inbox_bodies(repo, "chessmaster")) == 1


def test_an_absolute_core_hooks_path_inside_the_repo_stays_out_of_git_status(repo_dir: Path, cli: CliRunner) -> None:
    git(repo_dir, "config", "core.hooksPath", str(repo_dir / "githooks"))
    assert cli("init").returncode == 0
    assert (repo_dir / "githooks" / "post-commit").exists()
    untracked = [
        "?? .claude/settings.json",
        "?? .codex/config.toml",
        "?? .mcp.json",
        "?? fracta.yaml",
        "?? opencode.json",
    ]  # fracta init's
    assert git(repo_dir, "status", "--porcelain", "--untracked-files=all").splitlines() == untracked
    repo = repo_mod.find(repo_dir, env={})
    wt = agent_worktree(repo, cli, "api")
    assert commit(wt, "in the worktree").returncode == 0
    assert len(inbox_bodies(repo, "chessmaster")) == 1


def test_a_tracked_hook_in_core_hooks_path_is_left_alone(repo_dir: Path, cli: CliRunner) -> None:
    folder = repo_dir / "githooks"
    folder.mkdir()
    (folder / "post-commit").write_text("#!/bin/sh\nexit 0\n")
    git(repo_dir, "add", "githooks/post-commit")
    git(repo_dir, "commit", "-q", "-m", "tracked hook")
    git(repo_dir, "config", "core.hooksPath", str(folder))
    result = cli("hooks", "install")
    assert result.returncode == 5
    assert "tracked by git" in result.stderr
    assert git(repo_dir, "status", "--porcelain") == ""


@pytest.mark.parametrize(
    ("setting", "expected"),
    [(".githooks", "make it absolute"), ("/dev/null/hooks", "cannot install the post-commit hook")],
)
def test_an_unusable_core_hooks_path_is_refused_with_a_hint_but_init_still_works(
    repo_dir: Path, cli: CliRunner, setting: str, expected: str
) -> None:
    git(repo_dir, "config", "core.hooksPath", setting)
    result = cli("hooks", "install")
    assert result.returncode == 5
    assert expected in result.stderr and "hint:" in result.stderr
    init = cli("init")
    assert init.returncode == 0
    assert "post-commit hook not installed" in init.stderr


def test_the_hook_script_is_plain_posix_sh_and_names_its_python() -> None:
    text = hooks.script("/opt/my python/bin/python3")
    assert subprocess.run(["sh", "-n", "-c", text], check=False).returncode == 0
    assert text.startswith("#!/bin/sh\n" + hooks.MARKER)
    assert "\npython='/opt/my python/bin/python3'\n" in text


def test_a_stale_hook_is_refreshed_and_a_foreign_one_left_alone(initialized: repo_mod.Repo, tmp_path: Path) -> None:
    hook = initialized.git_common_dir / "hooks" / "post-commit" if initialized.git_common_dir else tmp_path
    assert hooks.refresh(initialized) is None  # init wrote what this fracta writes
    hooks.install(initialized, python="/elsewhere/bin/python")
    refreshed = hooks.refresh(initialized)
    assert refreshed is not None and refreshed.action == "updated"
    assert hook.read_text() == hooks.script()
    hook.write_text("#!/bin/sh\n# someone else's\n")
    assert hooks.refresh(initialized) is None
    assert hook.read_text() == "#!/bin/sh\n# someone else's\n"
