"""Spawn is a transaction: killed at any point, it leaves a whole agent or nothing.

Real control planes, real `fracta spawn` processes, real SIGKILLs. journal.PAUSE_ENV makes the
control plane stop at a named step of a spawn and say so, so each step is hit for certain; a
seeded loop of kills at random moments covers the steps in between (inside git, say).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import CliRunner, git
from lifecycle_helpers import cleanup, status, use_free_port, wait_for, wait_status

from fracta import adopt, agents, journal, lifecycle, processes, reaper, workspaces
from fracta import repo as repo_mod
from fracta.control import daemon
from fracta.errors import AgentExists

PY = sys.executable
# Read at import: the suite's fixtures clear FRACTA_* variables before each test runs.
CHAOS_SEED = int(os.environ.get("FRACTA_SPAWN_CHAOS_SEED", "13"))
CHAOS_ROUNDS = int(os.environ.get("FRACTA_SPAWN_CHAOS_ROUNDS", "8"))


@pytest.fixture
def fr(initialized: repo_mod.Repo, monkeypatch: pytest.MonkeyPatch) -> repo_mod.Repo:
    """An initialized repo whose control plane uses a free port, with fracta's CLI on PATH."""
    use_free_port(initialized)
    monkeypatch.setenv("PATH", f"{Path(PY).parent}{os.pathsep}{os.environ['PATH']}")
    return initialized


def up(cli: CliRunner, r: repo_mod.Repo, env: dict[str, str] | None = None) -> int:
    """Start the control plane (it adopts leftovers before it answers); returns its pid."""
    started = cli("up", env=env)
    assert started.returncode == 0, started.stderr
    info = daemon.read_info(r)
    assert info is not None
    return info.pid


def spawn_process(r: repo_mod.Repo, name: str, *command: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PY, "-m", "fracta", "spawn", name, "--", *command],
        cwd=r.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def sigkill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def registered(r: repo_mod.Repo) -> dict[Path, str | None]:
    """Worktrees git knows under .fracta/worktrees/ (spares aside) -> their branch."""
    home = r.worktrees_dir.resolve()
    return {
        w.path: w.branch for w in workspaces.worktrees(r) if w.path.parent == home and not w.path.name.startswith(".")
    }


def feature_branches(r: repo_mod.Repo) -> set[str]:
    out = git(r.root, "for-each-ref", "--format=%(refname:short)", "refs/heads/feature/")
    return set(out.split())


def assert_no_orphans(r: repo_mod.Repo, users: frozenset[str] = frozenset()) -> None:
    """No worktree, agent branch or journal without an agent; `users` are branches made by hand."""
    found, problems = agents.list_all(r)
    assert problems == []
    records = {a.name: a for a in found}
    owned = {a.branch for a in found if a.branch}
    folders = [e for e in os.listdir(r.worktrees_dir) if not e.startswith(".")]
    assert [f for f in folders if f not in records] == []
    assert [p for p in registered(r) if p.name not in records] == []
    assert feature_branches(r) - users - owned == set()
    assert journal.names(r) == []


def assert_nothing_of(r: repo_mod.Repo, name: str) -> None:
    assert not agents.exists(r, name)
    assert not (r.worktrees_dir / name).exists()
    assert (r.worktrees_dir / name).resolve() not in registered(r)
    assert f"feature/{name}" not in feature_branches(r)
    assert not journal.path_of(r, name).exists()
    assert not [m for m in os.listdir(r.missions_dir) if m.endswith(f"-{name}.json")]


def assert_whole_or_nothing(r: repo_mod.Repo, name: str) -> str:
    """'nothing', 'adopted' (a lost agent saying what was found) or 'whole'."""
    if not agents.exists(r, name):
        assert_nothing_of(r, name)
        return "nothing"
    agent = agents.load(r, name)
    assert not journal.path_of(r, name).exists()
    path = Path(agent.workspace or "")
    assert path.resolve() in registered(r), f"{name} has a record but no registered worktree"
    if agent.status == agents.Status.LOST:
        assert agent.error and ("interrupted" in agent.error or "no agent record" in agent.error), agent.error
        assert agent.intent.startswith("adopted by fracta")
        return "adopted"
    assert agent.branch in feature_branches(r)
    return "whole"


def kill_leftover(cli: CliRunner, r: repo_mod.Repo, name: str) -> None:
    """`fracta kill`; --force only after it refused for unsaved work, which it must then name."""
    killed = cli("kill", name)
    if killed.returncode == 5:
        assert "uncommitted" in killed.stderr or "commit" in killed.stderr, killed.stderr
        killed = cli("kill", name, "--force")
    assert killed.returncode == 0, killed.stderr
    assert_nothing_of(r, name)


def spawn_again(cli: CliRunner, r: repo_mod.Repo, name: str) -> None:
    again = cli("spawn", name, "--", "true")
    assert again.returncode == 0, again.stderr
    wait_status(r, name, "done")
    assert_whole_or_nothing(r, name)


# Where a spawn is killed, what is there before the control plane restarts, and the outcome.
STEPS = [
    ("journaled", "nothing"),  # journal written, nothing created yet
    ("workspace", "adopted"),  # worktree and branch, no record
    ("record", "adopted"),  # record queued, no mission: it would never start
    ("mission", "whole"),  # everything but the journal's removal
]


@pytest.mark.parametrize(("step", "outcome"), STEPS)
def test_a_control_plane_killed_at_each_step_of_a_spawn_leaves_a_whole_agent_or_nothing(
    fr: repo_mod.Repo, cli: CliRunner, tmp_path: Path, step: str, outcome: str
) -> None:
    paused = tmp_path / "paused"
    with cleanup(fr):
        pid = up(cli, fr, {journal.PAUSE_ENV: f"{step}:{paused}"})
        spawning = spawn_process(fr, "t", "sleep", "300")
        wait_for(f"the spawn to reach {step}", paused.exists)
        assert int(paused.read_text()) == pid  # the control plane runs the spawn
        sigkill(pid)
        _, err = spawning.communicate(timeout=120)
        assert spawning.returncode == 8, err  # control plane unavailable
        assert "Traceback" not in err
        # The kill did land midway: the journal names what the spawn was making.
        assert journal.path_of(fr, "t").exists()
        assert (fr.worktrees_dir / "t").exists() == (step != "journaled")
        assert agents.exists(fr, "t") == (step in ("record", "mission"))

        up(cli, fr)
        assert assert_whole_or_nothing(fr, "t") == outcome
        assert_no_orphans(fr)
        if outcome == "whole":
            wait_status(fr, "t", "running")  # its mission was queued: it starts
        if outcome != "nothing":
            kill_leftover(cli, fr, "t")
        spawn_again(cli, fr, "t")
        assert_no_orphans(fr)


@pytest.mark.parametrize("step", ["workspace", "record"])
def test_a_spawn_cli_killed_midway_still_ends_with_a_whole_agent(
    fr: repo_mod.Repo, cli: CliRunner, tmp_path: Path, step: str
) -> None:
    paused = tmp_path / "paused"
    with cleanup(fr):
        up(cli, fr, {journal.PAUSE_ENV: f"{step}:{paused}"})
        spawning = spawn_process(fr, "c", "sleep", "300")
        wait_for(f"the spawn to reach {step}", paused.exists)
        sigkill(spawning.pid)
        spawning.communicate(timeout=60)
        Path(f"{paused}.go").touch()  # the control plane carries on without its client
        wait_for("the spawn to finish", lambda: agents.exists(fr, "c") and not journal.path_of(fr, "c").exists())
        wait_status(fr, "c", "running")
        assert assert_whole_or_nothing(fr, "c") == "whole"
        assert_no_orphans(fr)
        assert cli("kill", "c").returncode == 0
        assert_nothing_of(fr, "c")


def test_a_spawn_in_flight_is_never_adopted_by_a_sweep(fr: repo_mod.Repo, cli: CliRunner, tmp_path: Path) -> None:
    paused = tmp_path / "paused"
    with cleanup(fr):
        up(cli, fr, {journal.PAUSE_ENV: f"workspace:{paused}"})
        spawning = spawn_process(fr, "f", "sleep", "300")
        wait_for("the spawn to make its worktree", paused.exists)
        found = adopt.recover(repo_mod.find(fr.root, env={}))  # a sweep, from another process
        assert found.busy == ["f"] and found.adopted == {}
        assert not agents.exists(fr, "f")
        Path(f"{paused}.go").touch()
        _, err = spawning.communicate(timeout=120)
        assert spawning.returncode == 0, err
        wait_status(fr, "f", "running")
        assert assert_whole_or_nothing(fr, "f") == "whole"
        assert adopt.recover(fr).adopted == {}


def _commit_files(root: Path, count: int) -> None:
    """Enough tracked files for the control plane to keep a spare checkout (spares.MIN_INDEX_BYTES)."""
    for i in range(count):
        folder = root / f"pkg{i // 50}"
        folder.mkdir(exist_ok=True)
        (folder / f"mod{i}.py").write_text(f"VALUE = {i}\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "many files")


def test_control_planes_sigkilled_at_random_moments_of_spawns_leave_no_orphan(
    fr: repo_mod.Repo, cli: CliRunner
) -> None:
    """A seeded loop (FRACTA_SPAWN_CHAOS_SEED, FRACTA_SPAWN_CHAOS_ROUNDS to vary it)."""
    seed, rounds = CHAOS_SEED, CHAOS_ROUNDS
    rng = random.Random(seed)
    _commit_files(fr.root, 400)
    outcomes: dict[str, int] = {}
    with cleanup(fr):
        up(cli, fr)
        t0 = time.monotonic()
        timed = spawn_process(fr, "timed", "true")
        timed.communicate(timeout=120)
        assert timed.returncode == 0
        span = time.monotonic() - t0  # a whole spawn, CLI start to answer
        for i in range(rounds):
            pid = up(cli, fr)
            name = f"r{i}"
            spawning = spawn_process(fr, name, "sleep", "300")
            time.sleep(rng.uniform(0.0, span))  # places the kill somewhere in the spawn; nothing waits on it
            sigkill(pid)
            spawning.communicate(timeout=120)  # it may have started a new control plane, if it came first
            wait_for("the control plane to die", lambda killed=pid: not processes.alive(killed, None))
            up(cli, fr)
            outcome = assert_whole_or_nothing(fr, name)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            assert_no_orphans(fr)
            if outcome != "nothing":
                kill_leftover(cli, fr, name)
        spawn_again(cli, fr, "r0")
        assert_no_orphans(fr)
    print(f"seed {seed}, {rounds} rounds, outcomes {outcomes}")


def test_a_worktree_of_an_older_fracta_is_adopted_and_kill_guards_its_work(fr: repo_mod.Repo, cli: CliRunner) -> None:
    root = fr.root
    old = fr.worktrees_dir / "old"
    git(root, "worktree", "add", "-q", str(old), "-b", "feature/old")
    (old / "done.txt").write_text("committed work\n")
    git(old, "add", "done.txt")
    git(old, "commit", "-q", "-m", "work of an agent fracta forgot")
    (old / "draft.txt").write_text("uncommitted work\n")
    git(root, "branch", "feature/mine")  # the user's own, made by hand: not fracta's
    mine = git(root, "rev-parse", "feature/mine")
    with cleanup(fr):
        up(cli, fr)
        listed = json.loads(cli("list", "--json").stdout)["agents"]
        assert [a["name"] for a in listed] == ["old"]
        agent = listed[0]
        assert agent["status"] == "lost" and agent["branch"] == "feature/old"
        assert str(old) in agent["error"] and "feature/old" in agent["error"]
        assert "adopted by fracta" in cli("list").stdout
        events = (fr.events_path).read_text()
        assert '"agent.adopted"' in events

        refused = cli("kill", "old")
        assert refused.returncode == 5
        assert "1 commit(s) on feature/old" in refused.stderr and "draft.txt" in refused.stderr
        assert (old / "draft.txt").exists() and agents.exists(fr, "old")

        forced = cli("kill", "old", "--force", "--json")
        assert forced.returncode == 0, forced.stderr
        ref = json.loads(forced.stdout)["saved"]["ref"]
        assert ref.startswith("refs/fracta/archive/old/")
        assert git(root, "show", f"{ref}:done.txt") == "committed work"
        assert git(root, "show", f"{ref}:draft.txt") == "uncommitted work"
        assert_nothing_of(fr, "old")
        assert git(root, "rev-parse", "feature/mine") == mine  # untouched, and no agent
        assert not agents.exists(fr, "mine")
        assert_no_orphans(fr, users=frozenset({"feature/mine"}))
        spawn_again(cli, fr, "old")


def test_kill_finds_a_leftover_before_any_control_plane_has_adopted_it(fr: repo_mod.Repo, cli: CliRunner) -> None:
    root = fr.root
    old = fr.worktrees_dir / "old"
    git(root, "worktree", "add", "-q", str(old), "-b", "feature/old")
    (old / "draft.txt").write_text("uncommitted work\n")
    assert daemon.read_info(fr) is None  # nothing has adopted it yet
    refused = cli("kill", "old")
    assert refused.returncode == 5, refused.stderr
    assert "draft.txt" in refused.stderr and (old / "draft.txt").exists()
    forced = cli("kill", "old", "--force", "--json")
    assert forced.returncode == 0, forced.stderr
    ref = json.loads(forced.stdout)["saved"]["ref"]
    assert git(root, "show", f"{ref}:draft.txt") == "uncommitted work"
    assert_nothing_of(fr, "old")
    assert cli("kill", "nobody").returncode == 3  # nothing there: still no such agent


def test_a_spawn_killed_inside_git_is_adopted_whatever_git_left(fr: repo_mod.Repo, cli: CliRunner) -> None:
    """The two states a `git worktree add -b` killed midway leaves, made by hand with a journal:
    the branch alone (git makes it first), and a worktree still locked 'initializing' whose
    checkout never finished."""
    root = fr.root
    base = git(root, "rev-parse", "HEAD")
    for name in ("branchonly", "halfmade"):
        path = fr.worktrees_dir / name
        entry = journal.entry(name, "command", "git", path, f"feature/{name}", base, ["true"])
        journal.write(fr, entry)
    git(root, "branch", "feature/branchonly", base)
    half = fr.worktrees_dir / "halfmade"
    git(root, "worktree", "add", "-q", str(half), "-b", "feature/halfmade", base)
    admin = Path(git(half, "rev-parse", "--path-format=absolute", "--git-dir"))
    (admin / "locked").write_text("initializing")
    (admin / "index").unlink()
    (half / "README.md").unlink()  # the checkout had not written it yet
    with cleanup(fr):
        up(cli, fr)
        only = agents.load(fr, "branchonly")
        assert only.status == agents.Status.LOST and "interrupted" in (only.error or "")
        assert "branch feature/branchonly" in (only.error or "") and "worktree" not in (only.error or "")
        made = agents.load(fr, "halfmade")
        assert "files may be missing" in (made.error or "")
        assert journal.names(fr) == []
        assert cli("kill", "branchonly").returncode == 0  # its branch holds nothing new
        assert_nothing_of(fr, "branchonly")
        kill_leftover(cli, fr, "halfmade")  # git's half checkout looks like deletions: --force
        assert_no_orphans(fr)
        spawn_again(cli, fr, "branchonly")
        spawn_again(cli, fr, "halfmade")


def test_a_record_whose_worktree_is_gone_says_so_and_kill_still_guards_the_branch(
    fr: repo_mod.Repo, cli: CliRunner
) -> None:
    root = fr.root
    with cleanup(fr):
        up(cli, fr)
        made = cli("spawn", "gone", "--", "sh", "-c", "echo g > g.txt && git add g.txt && git commit -qm gone-work")
        assert made.returncode == 0, made.stderr
        wait_status(fr, "gone", "done")
        cli("down")
        git(root, "worktree", "remove", "--force", str(fr.worktrees_dir / "gone"))
        up(cli, fr)
        error = agents.load(fr, "gone").error or ""
        assert "is gone" in error and "feature/gone" in error
        assert status(fr, "gone") == "done"  # what it did stays as it was
        refused = cli("kill", "gone")
        assert refused.returncode == 5 and "feature/gone" in refused.stderr
        forced = cli("kill", "gone", "--force", "--json")
        assert forced.returncode == 0, forced.stderr
        ref = json.loads(forced.stdout)["saved"]["ref"]
        assert git(root, "show", f"{ref}:g.txt") == "g"
        assert_nothing_of(fr, "gone")


def test_a_failure_midway_rolls_the_whole_spawn_back(fr: repo_mod.Repo) -> None:
    fr.missions_dir.rmdir()
    fr.missions_dir.write_text("not a folder: queuing the mission fails after the record was made\n")
    with pytest.raises(OSError):
        lifecycle.spawn(fr, lifecycle.SpawnRequest(name="half", runtime="command", args=("true",)))
    fr.missions_dir.unlink()
    fr.missions_dir.mkdir()
    assert_nothing_of(fr, "half")
    hook = Path(git(fr.root, "rev-parse", "--path-format=absolute", "--git-path", "hooks")) / "post-checkout"
    hook.write_text("#!/bin/sh\necho 'checkout refused by a hook' >&2\nexit 1\n")
    hook.chmod(0o755)
    with pytest.raises(Exception, match="checkout refused by a hook"):
        lifecycle.spawn(fr, lifecycle.SpawnRequest(name="hooked", runtime="command", args=("true",)))
    assert_nothing_of(fr, "hooked")
    assert adopt.recover(fr).adopted == {}


def test_a_spawn_that_finds_a_leftover_under_its_name_adopts_it_at_once(fr: repo_mod.Repo, cli: CliRunner) -> None:
    """No control plane has looked yet (the core is called directly): the spawn itself adopts."""
    git(fr.root, "worktree", "add", "-q", str(fr.worktrees_dir / "late"), "-b", "feature/late")
    entry = journal.entry("ghost", "command", "git", fr.worktrees_dir / "ghost", "feature/ghost", None, [])
    journal.write(fr, entry)  # a spawn that died before it created anything
    with pytest.raises(AgentExists, match="taken by what an earlier spawn or fracta left") as caught:
        lifecycle.spawn(fr, lifecycle.SpawnRequest(name="late", runtime="command", args=("true",)))
    assert "fracta kill late" in caught.value.hint
    assert status(fr, "late") == "lost"
    ghost = lifecycle.spawn(fr, lifecycle.SpawnRequest(name="ghost", runtime="command", args=("true",)))
    assert ghost.status == agents.Status.QUEUED  # its journal named nothing that exists: the name was free
    with cleanup(fr):
        up(cli, fr)
        wait_status(fr, "ghost", "done")
        kill_leftover(cli, fr, "late")
        spawn_again(cli, fr, "late")
        assert_no_orphans(fr)


def test_the_reapers_full_sweep_adopts_leftovers_and_a_quick_pass_does_not(fr: repo_mod.Repo) -> None:
    git(fr.root, "worktree", "add", "-q", str(fr.worktrees_dir / "swept"), "-b", "feature/swept")
    reaper.sweep(fr, full=False)
    assert not agents.exists(fr, "swept")
    reaper.sweep(fr, full=True)
    assert status(fr, "swept") == "lost"
    assert "no agent record" in (agents.load(fr, "swept").error or "")
    reaper.sweep(fr, full=True)  # looking again changes nothing
    assert [a.name for a in agents.list_all(fr)[0]] == ["swept"]
    assert_no_orphans(fr)


def test_a_queued_agent_whose_worktree_is_gone_is_lost_instead_of_starting_nowhere(fr: repo_mod.Repo) -> None:
    lifecycle.spawn(fr, lifecycle.SpawnRequest(name="q", runtime="command", args=("true",)))  # no control plane
    git(fr.root, "worktree", "remove", "--force", str(fr.worktrees_dir / "q"))
    found = adopt.recover(fr)
    assert list(found.annotated) == ["q"]
    agent = agents.load(fr, "q")
    assert agent.status == agents.Status.LOST and "is gone" in (agent.error or "")
    assert not [m for m in os.listdir(fr.missions_dir) if m.endswith("-q.json")]
    assert adopt.recover(fr).annotated == {}  # said once


def test_a_folder_that_is_no_worktree_is_left_alone_and_its_name_refused_with_why(fr: repo_mod.Repo) -> None:
    stray = fr.worktrees_dir / "stray"
    stray.mkdir()
    (stray / "notes.txt").write_text("someone's notes\n")
    assert adopt.recover(fr).adopted == {}
    with pytest.raises(AgentExists) as caught:
        lifecycle.spawn(fr, lifecycle.SpawnRequest(name="stray", runtime="command", args=("true",)))
    assert "move that folder away" in caught.value.hint
    assert not agents.exists(fr, "stray")
    assert (stray / "notes.txt").read_text() == "someone's notes\n"
    assert journal.names(fr) == []
