"""The agent lifecycle end to end: real control plane, real runners, real git worktrees."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import psutil
import pytest
from conftest import CliRunner, git
from lifecycle_helpers import (
    cleanup,
    kill_control_plane_hard,
    output_lines,
    script,
    spawn,
    status,
    use_free_port,
    wait_for,
    wait_status,
)

from fracta import agents, events, mailbox, reaper
from fracta import repo as repo_mod
from fracta.control import daemon

pytestmark = pytest.mark.both_backends

PY = sys.executable


@pytest.fixture
def fr(initialized: repo_mod.Repo, monkeypatch: pytest.MonkeyPatch) -> repo_mod.Repo:
    """An initialized repo whose control plane uses a free port, with fracta's CLI on PATH."""
    use_free_port(initialized)
    monkeypatch.setenv("PATH", f"{Path(PY).parent}{os.pathsep}{os.environ['PATH']}")
    return initialized


def test_three_agents_coordinate_commit_and_two_merge_one_conflicts(fr: repo_mod.Repo, cli: CliRunner) -> None:
    root = fr.root
    (root / "shared.txt").write_text("original\n")
    git(root, "add", "shared.txt")
    git(root, "commit", "-q", "-m", "shared file")
    gate = root.parent / "all-spawned"
    job = script(
        root,
        "job.sh",
        f"while [ ! -e {gate} ]; do sleep 0.05; done\n"  # every peer exists before anyone writes
        'fracta intent "$FRACTA_AGENT" "working on $1"\n'
        'fracta say "$2" "hello from $FRACTA_AGENT" --from "$FRACTA_AGENT"\n'
        'echo "$FRACTA_AGENT" > "$1"\n'
        'git add "$1" && git commit -q -m "$FRACTA_AGENT: $1"\n',
    )
    git(root, "add", job.name)
    git(root, "commit", "-q", "-m", "job script")
    with cleanup(fr):
        spawn(cli, "alpha", "sh", "job.sh", "alpha.txt", "beta")
        spawn(cli, "beta", "sh", "job.sh", "beta.txt", "gamma")
        spawn(cli, "gamma", "sh", "job.sh", "shared.txt", "alpha")
        gate.touch()
        for name in ("alpha", "beta", "gamma"):
            wait_status(fr, name, "done")
        assert agents.load(fr, "alpha").intent == "working on alpha.txt"
        inbox = json.loads(cli("inbox", "alpha", "--json").stdout)
        assert [m["body"] for m in inbox["messages"]] == ["hello from gamma"]
        # The chessmaster edits shared.txt too, so gamma's branch will conflict.
        (root / "shared.txt").write_text("chessmaster's version\n")
        git(root, "commit", "-q", "-am", "chessmaster edits shared")
        for name in ("alpha", "beta"):
            merged = cli("merge", name)
            assert merged.returncode == 0, merged.stderr
        assert (root / "alpha.txt").read_text() == "alpha\n"
        assert (root / "beta.txt").read_text() == "beta\n"
        before = (git(root, "rev-parse", "HEAD"), git(root, "status", "--porcelain"), (root / "shared.txt").read_text())
        conflict = cli("merge", "gamma")
        assert conflict.returncode == 4
        assert "shared.txt" in conflict.stderr
        after = (git(root, "rev-parse", "HEAD"), git(root, "status", "--porcelain"), (root / "shared.txt").read_text())
        assert after == before
        assert "merged beta" in fr.progress_path.read_text()


def test_max_agents_two_runs_at_most_two_and_starts_in_fifo_order(fr: repo_mod.Repo, cli: CliRunner) -> None:
    fr.config_path.write_text(fr.config_path.read_text().replace("max_agents: 4", "max_agents: 2"))
    gate = fr.root.parent / "gates"
    gate.mkdir()
    log = fr.root.parent / "starts.log"
    waiter = script(
        fr.root.parent,
        "wait.sh",
        f'echo "start $FRACTA_AGENT" >> {log}\n'
        f'while [ ! -e {gate}/"$FRACTA_AGENT" ]; do sleep 0.05; done\n'
        f'echo "end $FRACTA_AGENT" >> {log}\n',
    )
    names = [f"job{i}" for i in range(5)]
    with cleanup(fr):
        for name in names:
            spawn(cli, name, "sh", str(waiter))
        for released in range(5):
            # Exactly the next agents in FIFO order are running; the rest wait queued.
            running = names[released : released + 2]
            for name in running:
                wait_for(f"{name} to start", lambda n=name: f"start {n}" in log.read_text())  # type: ignore[misc]
            statuses = {n: status(fr, n) for n in names[released:]}
            assert [n for n, s in statuses.items() if s in {"running", "starting"}] == running
            assert all(statuses[n] == "queued" for n in names[released + 2 :])
            (gate / names[released]).touch()
            wait_status(fr, names[released], "done")
        starts = [line.split()[1] for line in log.read_text().splitlines() if line.startswith("start")]
        assert starts == names
        concurrent = peak = 0
        for line in log.read_text().splitlines():
            concurrent += 1 if line.startswith("start") else -1
            peak = max(peak, concurrent)
        assert peak <= 2


def test_sigkill_of_control_plane_loses_nothing_and_restart_reconciles(fr: repo_mod.Repo, cli: CliRunner) -> None:
    gate = fr.root.parent / "release"
    worker = script(
        fr.root.parent,
        "worker.sh",
        'echo "first line of $FRACTA_AGENT"\n'
        f"while [ ! -e {gate} ]; do sleep 0.05; done\n"
        'echo "after the crash: $FRACTA_AGENT"\n'
        'exit "$1"\n',
    )
    with cleanup(fr):
        spawn(cli, "steady", "sh", str(worker), "0")
        spawn(cli, "broken", "sh", str(worker), "3")
        spawn(cli, "orphan", "sh", str(worker), "0")
        for name in ("steady", "broken", "orphan"):
            wait_for(f"{name} output", lambda n=name: output_lines(fr, n))  # type: ignore[misc]
        kill_control_plane_hard(fr)
        # The orphan's runner dies too, without an exit record: it must come back as `lost`.
        orphan = agents.load(fr, "orphan")
        assert orphan.pid is not None
        os.killpg(orphan.pid, signal.SIGKILL)
        gate.touch()  # agents keep running and recording output with no control plane
        for name in ("steady", "broken"):
            wait_for(f"{name} exit record", lambda n=name: (fr.agent_dir(n) / "exit.json").exists())  # type: ignore[misc]
        assert daemon.read_info(fr) is None
        assert cli("up").returncode == 0
        wait_status(fr, "orphan", "lost")
        assert status(fr, "steady") == "done"
        assert status(fr, "broken") == "failed"
        assert agents.load(fr, "broken").exit_code == 3
        for name in ("steady", "broken"):
            assert output_lines(fr, name) == [f"first line of {name}", f"after the crash: {name}"]


def test_kill_refuses_unsaved_work_and_force_keeps_it_restorable(fr: repo_mod.Repo, cli: CliRunner) -> None:
    root = fr.root
    with cleanup(fr):
        spawn(cli, "worker", "sh", "-c", "echo work > w.txt && git add w.txt && git commit -qm 'agent commit'")
        wait_status(fr, "worker", "done")
        wt = Path(agents.load(fr, "worker").workspace or "")
        (wt / "draft.txt").write_text("not committed yet\n")
        refused = cli("kill", "worker")
        assert refused.returncode == 5
        assert "unmerged" in refused.stderr or "commit" in refused.stderr
        assert wt.exists() and git(root, "branch", "--list", "feature/worker")
        forced = cli("kill", "worker", "--force", "--json")
        assert forced.returncode == 0, forced.stderr
        saved = json.loads(forced.stdout)["saved"]
        assert saved["ref"].startswith("refs/fracta/archive/worker/")
        assert not wt.exists()
        assert git(root, "branch", "--list", "feature/worker") == ""
        assert not fr.agent_dir("worker").exists()
        restored = root.parent / "restored"
        git(root, "worktree", "add", "-q", str(restored), saved["ref"])
        assert (restored / "w.txt").read_text() == "work\n"
        assert (restored / "draft.txt").read_text() == "not committed yet\n"


def test_reaper_never_deletes_unmerged_work(fr: repo_mod.Repo, cli: CliRunner) -> None:
    fr.config_path.write_text(fr.config_path.read_text().replace("ttl: 86400", "ttl: 0"))
    with cleanup(fr):
        spawn(cli, "keeper", "sh", "-c", "echo k > k.txt && git add k.txt && git commit -qm keep")
        spawn(cli, "empty", "true")
        wait_status(fr, "keeper", "done")
        wait_status(fr, "empty", "done")
        cli("down")
        fresh = repo_mod.find(fr.root, env={})
        result = reaper.sweep(fresh)
        assert "keeper" in result.kept
        assert "empty" in result.removed
        assert agents.exists(fresh, "keeper")
        assert git(fr.root, "log", "-1", "--format=%s", "feature/keeper") == "keep"
        assert (fr.worktrees_dir / "keeper" / "k.txt").exists()
        assert not agents.exists(fresh, "empty")
        assert git(fr.root, "branch", "--list", "feature/empty") == ""


def test_bad_spawns_leave_nothing_behind(fr: repo_mod.Repo, cli: CliRunner) -> None:
    def nothing_left(name: str) -> None:
        assert not fr.agent_dir(name).exists()
        assert not (fr.worktrees_dir / name).exists()
        assert git(fr.root, "branch", "--list", f"feature/{name}") == ""
        assert not [m for m in os.listdir(fr.missions_dir) if name in m]

    with cleanup(fr):
        missing = cli("spawn", "nobin", "--", "no-such-binary-here")
        assert missing.returncode == 2 and "no-such-binary-here" in missing.stderr
        nothing_left("nobin")
        badbase = cli("spawn", "badbase", "--base", "no-such-ref", "--", "true")
        assert badbase.returncode == 2 and "no-such-ref" in badbase.stderr
        nothing_left("badbase")
        git(fr.root, "branch", "feature/taken")
        taken = cli("spawn", "taken", "--", "true")
        assert taken.returncode != 0 and "feature/taken" in taken.stderr
        assert not fr.agent_dir("taken").exists()
        badname = cli("spawn", "Bad/Name", "--", "true")
        assert badname.returncode == 2 and "not allowed" in badname.stderr
        unknown_rt = cli("spawn", "rt", "--runtime", "nope", "--", "true")
        assert unknown_rt.returncode == 2 and "'nope' is not one of 'claude', 'codex'" in unknown_rt.stderr
        nothing_left("rt")
        spawn(cli, "twice", "true")
        dup = cli("spawn", "twice", "--", "true")
        assert dup.returncode == 4 and "already exists" in dup.stderr
        for command in (("kill", "ghost"), ("peek", "ghost"), ("merge", "ghost")):
            gone = cli(*command)
            assert gone.returncode == 3, (command, gone.stderr)
            assert "ghost" in gone.stderr


def test_rest_api_needs_the_token_and_serves_openapi(fr: repo_mod.Repo, cli: CliRunner) -> None:
    import http.client

    with cleanup(fr):
        assert cli("up").returncode == 0
        second = cli("up")
        assert "already running" in second.stdout
        info = daemon.read_info(fr)
        assert info is not None
        port = int(info.url.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/v1/agents")
        assert conn.getresponse().status == 401
        conn.close()
        token = fr.token_path.read_text().strip()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/openapi.json", headers={"Authorization": f"Bearer {token}"})
        doc = json.loads(conn.getresponse().read())
        assert "/v1/agents" in doc["paths"]
        conn.close()
        mailbox.send(fr, "chessmaster", "chessmaster", "note to self")


def test_an_agent_printing_its_token_does_not_leak_it_through_peek(fr: repo_mod.Repo, cli: CliRunner) -> None:
    with cleanup(fr):
        spawn(cli, "chatty", "sh", "-c", 'echo "my token is $FRACTA_TOKEN"')
        wait_status(fr, "chatty", "done")
        token = (fr.agent_dir("chatty") / "token").read_text().strip()
        shown = cli("peek", "chatty", "--json").stdout
        assert "my token is [redacted]" in shown
        assert token not in shown
        assert token not in (fr.agent_dir("chatty") / "output.jsonl").read_text()


def _spares(r: repo_mod.Repo) -> list[int]:
    found = []
    for proc in psutil.process_iter():
        try:
            cmdline = proc.cmdline()
        except psutil.Error:
            continue
        if "--spare" in cmdline and str(r.state) in cmdline:
            found.append(proc.pid)
    return found


def test_the_next_agent_runs_in_the_warm_spare_and_a_dead_spare_means_a_cold_start(
    fr: repo_mod.Repo, cli: CliRunner
) -> None:
    with cleanup(fr):
        assert cli("up").returncode == 0
        [spare] = wait_for("a warm spare runner", lambda: _spares(fr))  # type: ignore[misc]
        spawn(cli, "warm", "sh", "-c", "echo warm")
        wait_status(fr, "warm", "done")
        assert output_lines(fr, "warm") == ["warm"]
        started = [e.data for e in events.read(fr)]  # from the store, whichever backend
        [runner_pid] = [e["pid"] for e in started if e["event"] == "agent.started" and e["agent"] == "warm"]
        assert runner_pid == spare  # the agent ran in the spare that was waiting
        # The used spare is the agent's runner until it exits; then one fresh spare waits.
        wait_for("the used spare to exit", lambda: spare not in _spares(fr))
        [replacement] = wait_for("a new spare", lambda: _spares(fr))  # type: ignore[misc]
        os.kill(replacement, signal.SIGKILL)
        spawn(cli, "cold", "sh", "-c", "echo cold")
        wait_status(fr, "cold", "done")
        assert output_lines(fr, "cold") == ["cold"]
        cli("down")
        wait_for("spares to exit with the control plane", lambda: not _spares(fr))
