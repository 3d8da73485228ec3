"""Several control planes on one PostgreSQL store: one queue, one set of agents, each agent
supervised by one control plane at a time, and a control plane's claims and agents taken over by
another once it dies. Real control-plane processes, real runners, a real PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pg
import pytest
from conftest import CliRunner
from lifecycle_helpers import cleanup, wait_for, wait_status

from fracta import agents, events, identity, journal
from fracta import repo as repo_mod
from fracta.control import daemon

pg.require()
import psycopg  # noqa: E402 - after pg.require(): without PostgreSQL this module skips loudly

PY = sys.executable
LEASE = 2  # seconds: state.lease_seconds here, so that a takeover comes soon


@pytest.fixture
def fr(initialized: repo_mod.Repo, monkeypatch: pytest.MonkeyPatch) -> repo_mod.Repo:
    config = initialized.config_path
    text = config.read_text().replace("lease_seconds: 15", f"lease_seconds: {LEASE}", 1)
    config.write_text(text.replace("sweep_interval: 60", "sweep_interval: 1", 1))  # a dead runner is seen soon
    monkeypatch.setenv("PATH", f"{Path(PY).parent}{os.pathsep}{os.environ['PATH']}")
    return repo_mod.find(initialized.root, env={})


def up(cli: CliRunner, r: repo_mod.Repo, instance: str | None, env: dict[str, str] | None = None) -> daemon.ControlInfo:
    result = cli("up", *(["--instance", instance] if instance else []), env=env)
    assert result.returncode == 0, result.stderr
    info = daemon.read_info(r, instance)
    assert info is not None
    return info


def spawn_through(r: repo_mod.Repo, url: str, name: str, *command: str) -> dict[str, object]:
    """POST /v1/agents to one control plane, as the chessmaster."""
    request = urllib.request.Request(
        f"{url}/v1/agents",
        data=json.dumps({"name": name, "runtime": "command", "args": list(command)}).encode(),
        headers={"Authorization": f"Bearer {identity.chessmaster_token(r)}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return dict(json.loads(response.read()))


def supervisors(url: str) -> dict[str, str | None]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT name, supervisor FROM agent_state").fetchall())


def starts(r: repo_mod.Repo, name: str) -> int:
    return sum(1 for e in events.read(r) if e.data.get("event") == "agent.started" and e.data.get("agent") == name)


@pytest.mark.parametrize("state_backend", ["postgres"])
def test_two_control_planes_share_one_queue_and_each_agent_has_one_supervisor(
    fr: repo_mod.Repo, cli: CliRunner
) -> None:
    url = os.environ["FRACTA_DATABASE_URL"]
    with cleanup(fr):
        a = up(cli, fr, None)
        b = up(cli, fr, "b")
        assert b.pid != a.pid and b.url != a.url
        # Spawned through either: one queue (either control plane may claim a spawn's mission),
        # one set of agents, each started once and supervised by exactly one of them.
        spawn_through(fr, a.url, "via-a", "sleep", "300")
        spawn_through(fr, b.url, "via-b", "sleep", "300")
        wait_status(fr, "via-a", "running")
        wait_status(fr, "via-b", "running")
        # A runner records `running`, then the agent.started event: wait for the event too.
        wait_for("both start events", lambda: starts(fr, "via-a") and starts(fr, "via-b"))
        assert starts(fr, "via-a") == starts(fr, "via-b") == 1
        owners = {name: (owner or "").split(":")[1:2] for name, owner in supervisors(url).items()}
        assert owners["via-a"] in ([str(a.pid)], [str(b.pid)])
        assert owners["via-b"] in ([str(a.pid)], [str(b.pid)])
        # Both see both (one store): the CLI, through whichever runs, lists them.
        listed = json.loads(cli("list", "--json").stdout)
        assert {x["name"] for x in listed["agents"]} == {"via-a", "via-b"}
        # A dies: after its lease, B supervises A's agent too, and settles it when its runner dies.
        os.kill(a.pid, signal.SIGKILL)
        wait_for("B to take over via-a", lambda: supervisors(url)["via-a"].split(":")[1] == str(b.pid))  # type: ignore[union-attr]
        runner_pid = agents.load(fr, "via-a").pid
        assert runner_pid is not None
        os.killpg(os.getpgid(runner_pid), signal.SIGKILL)
        wait_for("B's reaper to settle via-a", lambda: agents.load(fr, "via-a").status.value in {"lost", "failed"})


@pytest.mark.parametrize("state_backend", ["postgres"])
def test_a_control_plane_killed_mid_claim_leaves_its_mission_to_the_other_which_runs_it_once(
    fr: repo_mod.Repo, cli: CliRunner, tmp_path: Path
) -> None:
    paused = tmp_path / "paused"
    ran = tmp_path / "ran"
    with cleanup(fr):
        a = up(cli, fr, None, {journal.PAUSE_ENV: f"claimed:{paused}"})
        # The spawn's own request claims the mission and stops right after the claim.
        spawning = cli_background(fr, "spawn", "once", "--", "sh", "-c", f"echo ran >> {ran}")
        wait_for("A to claim the mission", paused.exists)
        assert int(paused.read_text()) == a.pid
        up(cli, fr, "b")
        os.kill(a.pid, signal.SIGKILL)
        spawning.communicate(timeout=120)
        # B claims it once A's lease has run out, and starts it: the program runs exactly once.
        wait_status(fr, "once", "done")
        assert ran.read_text() == "ran\n"
        assert starts(fr, "once") == 1
        assert fr.store.missions.pending() == ([], [])


def cli_background(r: repo_mod.Repo, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PY, "-m", "fracta", *args], cwd=r.root, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
