"""Agents' processes under faults: real runners, real programs, real SIGKILLs (issue 13, items 1, 3, 5).

Processes are found here by a unique word in their command line, never through fracta's own way
of finding them (its process group and run marker), so these tests hold whatever fracta does.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import CliRunner, git
from lifecycle_helpers import output_lines, script, spawn, status, use_free_port, wait_for, wait_status

from fracta import agents, lifecycle, processes
from fracta import repo as repo_mod
from fracta.control import daemon
from fracta.errors import AgentNotFound
from fracta.launchers import local

pytestmark = pytest.mark.both_backends

PY = sys.executable
SLEEP = (PY, "-c", "import time; time.sleep(1000)")  # a long sleeper that takes a word to be found by
NAP = f'"{PY}" -c "import time; time.sleep(1000)"'  # the same, in a shell script


@pytest.fixture
def fr(initialized: repo_mod.Repo, monkeypatch: pytest.MonkeyPatch) -> repo_mod.Repo:
    """An initialized repo whose control plane uses a free port, with fracta's CLI on PATH."""
    use_free_port(initialized)
    monkeypatch.setenv("PATH", f"{Path(PY).parent}{os.pathsep}{os.environ['PATH']}")
    return initialized


def configure(r: repo_mod.Repo, **values: str) -> None:
    text = r.config_path.read_text()
    for key, value in values.items():
        head, _, rest = text.partition(f"  {key}: ")
        assert rest, f"no {key} in fracta.yaml"
        text = f"{head}  {key}: {value}" + rest[rest.index(" ") :]
    r.config_path.write_text(text)


def with_word(word: str) -> list[int]:
    """Live (non-zombie) processes whose command line holds `word`: found without fracta's help."""
    found = []
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        try:
            cmdline = proc.cmdline()
        except psutil.Error:
            continue
        if word in cmdline and processes.alive(proc.pid, None):
            found.append(proc.pid)
    return found


@contextlib.contextmanager
def cleanup(r: repo_mod.Repo, *words: str) -> Iterator[None]:
    """Stop the control plane and anything the test left running, whatever the outcome."""
    try:
        yield
    finally:
        daemon.down(r)
        found, _ = agents.list_all(r)
        for a in found:
            with contextlib.suppress(Exception):
                local.stop(r, a.name, 0.5, a.pid, a.pid_start)
        for word in words:
            for pid in with_word(word):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def committer(r: repo_mod.Repo, word: str) -> Path:
    """A program that commits into its worktree (by absolute path) every 0.1 s, ignores SIGTERM,
    and leaves a child in a session of its own, as daemons and detached spawns do."""
    return script(
        r.root.parent,
        f"{word}.sh",
        "trap '' TERM\n"
        'wt="$PWD"\n'
        f"setsid {NAP} {word} &\n"
        "n=0\n"
        "while true; do\n"
        '  n=$((n+1)); echo $n > "$wt/old.txt"\n'
        f'  git -C "$wt" add old.txt && git -C "$wt" commit -q -m "{word} $n" || true\n'
        "  sleep 0.1\n"
        "done\n",
    )


def start_committer(r: repo_mod.Repo, cli: CliRunner, name: str, word: str) -> list[int]:
    spawn(cli, name, "sh", str(committer(r, word)), word)
    wait_for(f"{name} to commit", lambda: word in git(r.root, "log", "-1", "--format=%s", f"feature/{name}"))
    wait_for(f"{name}'s detached child", lambda: len(with_word(word)) >= 2)
    return with_word(word)


def kill_runner_only(r: repo_mod.Repo, name: str) -> None:
    """SIGKILL the runner alone, as the OOM killer or a `kill -9 <pid>` would; its program lives on."""
    pid = agents.load(r, name).pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for("the runner to die", lambda: not processes.alive(pid, None))


def test_a_sigkilled_runner_is_stopped_whole_by_the_reaper_and_is_lost_only_once_nothing_runs(
    fr: repo_mod.Repo, cli: CliRunner
) -> None:
    configure(fr, kill_grace="1")
    word = f"reaped-{uuid.uuid4().hex[:8]}"
    with cleanup(fr, word):
        program = start_committer(fr, cli, "busy", word)
        assert cli("down").returncode == 0  # no reaper runs until `up`
        kill_runner_only(fr, "busy")
        assert set(program) <= set(with_word(word)), "the program must outlive its runner for this test"
        seen_lost_while_running: list[list[int]] = []

        def watch() -> None:  # `lost` must never be on record while a process of it runs
            while status(fr, "busy") != "lost":
                time.sleep(0.01)
            if left := with_word(word):
                seen_lost_while_running.append(left)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        assert cli("up").returncode == 0  # its reaper reconciles at once
        watcher.join(timeout=60)
        assert not watcher.is_alive(), "the control plane's reaper never marked busy lost"
        assert seen_lost_while_running == []
        assert with_word(word) == []
        lost = agents.load(fr, "busy")
        assert lost.pid is None
        assert lost.error and "vanished without an exit record" in lost.error and "stopped" in lost.error


def test_kill_force_stops_the_program_of_a_sigkilled_runner_and_it_never_commits_into_a_new_same_named_agent(
    fr: repo_mod.Repo, cli: CliRunner
) -> None:
    configure(fr, kill_grace="1")
    word = f"forced-{uuid.uuid4().hex[:8]}"
    with cleanup(fr, word):
        program = start_committer(fr, cli, "busy", word)
        assert cli("down").returncode == 0  # its reaper must not get there first
        kill_runner_only(fr, "busy")
        killed = cli("kill", "busy", "--force", "--json")
        assert killed.returncode == 0, killed.stderr
        assert json.loads(killed.stdout)["stopped"] is True
        assert [pid for pid in program if processes.alive(pid, None)] == []
        assert with_word(word) == []
        # A new agent of the same name: its branch holds its own commit on top of the base only.
        base = git(fr.root, "rev-parse", "HEAD")
        spawn(cli, "busy", "sh", "-c", "echo new > new.txt && git add new.txt && git commit -qm fresh")
        wait_status(fr, "busy", "done")
        assert git(fr.root, "log", "--format=%s", f"{base}..feature/busy").split("\n") == ["fresh"]


@pytest.mark.files_only  # it removes the agent's record by hand, as a file
def test_a_name_is_not_reused_while_a_process_of_the_old_agent_runs(fr: repo_mod.Repo, cli: CliRunner) -> None:
    word = f"leftover-{uuid.uuid4().hex[:8]}"
    with cleanup(fr, word):
        # Its program leaves a child behind in a session of its own and exits: the agent is done.
        spawn(cli, "leaver", "sh", "-c", f"setsid {NAP} {word} > /dev/null 2>&1 < /dev/null &")
        wait_status(fr, "leaver", "done")
        wait_for("the left-behind child", lambda: with_word(word))
        [left] = with_word(word)
        # Forgotten without fracta (a record removed by hand): fracta must still not reuse the name.
        assert cli("down").returncode == 0
        shutil.rmtree(fr.agent_dir("leaver"))
        git(fr.root, "worktree", "remove", "--force", str(fr.worktrees_dir / "leaver"))
        git(fr.root, "branch", "-D", "feature/leaver")
        refused = cli("spawn", "leaver", "--", "true")
        assert refused.returncode == 4, refused.stderr
        assert str(left) in refused.stderr and "still run" in refused.stderr
        assert not fr.agent_dir("leaver").exists()
        os.kill(left, signal.SIGKILL)
        wait_for("the child to die", lambda: not with_word(word))
        spawn(cli, "leaver", "true")
        wait_status(fr, "leaver", "done")


def test_kill_stops_what_a_finished_agent_left_running(fr: repo_mod.Repo, cli: CliRunner) -> None:
    word = f"daemon-{uuid.uuid4().hex[:8]}"
    with cleanup(fr, word):
        spawn(cli, "leaver", "sh", "-c", f"setsid {NAP} {word} > /dev/null 2>&1 < /dev/null &")
        wait_status(fr, "leaver", "done")
        wait_for("the left-behind child", lambda: with_word(word))
        killed = cli("kill", "leaver", "--json")
        assert killed.returncode == 0, killed.stderr
        assert json.loads(killed.stdout)["stopped"] is True
        assert with_word(word) == []


def _left_queue(r: repo_mod.Repo, name: str) -> bool:
    try:
        return agents.load(r, name).status != agents.Status.QUEUED
    except AgentNotFound:
        return True


def _soon(check: Callable[[], bool], timeout: float = 120.0) -> None:
    """Wait for `check` polling every millisecond: the moment matters here, not only the outcome."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.001)


def slow_credentials(r: repo_mod.Repo, seconds: float) -> Path:
    """A credential helper that takes `seconds`, as corporate token helpers do; it runs right
    before each start (and at each spawn's check). Returns the file it adds a line to as it starts."""
    log = r.root.parent / "resolved.log"
    text = r.config_path.read_text().replace("agent_runtimes: {}", "agent_runtimes: {command: {auth_profile: slow}}")
    r.config_path.write_text(
        text + "\nauth:\n  credentials:\n    profiles:\n      slow:\n        resolver:\n"
        f'          command: [sh, -c, "echo x >> {log}; sleep {seconds}; echo token"]\n'
        "        bindings:\n          - env: SLOW_TOKEN\n"
    )
    return log


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_killing_a_queued_agent_as_a_slot_frees_up_leaves_nothing_running(fr: repo_mod.Repo, cli: CliRunner) -> None:
    configure(fr, max_agents="1", kill_grace="1")
    resolved = slow_credentials(fr, 0.4)
    gates = fr.root.parent / "gates"
    gates.mkdir()
    blocker = script(fr.root.parent, "block.sh", 'while [ ! -e "$1" ]; do sleep 0.01; done\n')
    words = [f"queued-{i}-{uuid.uuid4().hex[:6]}" for i in range(8)]
    with cleanup(fr, *words):
        for i, word in enumerate(words):
            name = f"waiter{i}"
            spawn(cli, f"block{i}", "sh", str(blocker), str(gates / str(i)))
            wait_status(fr, f"block{i}", "running")
            spawn(cli, name, *SLEEP, word)
            assert status(fr, name) == "queued"
            before = _lines(resolved)
            # Free the slot, and kill the queued agent while the spawner is starting it: at
            # moments spread over its credential helper's run, and as it takes it out of the queue.
            (gates / str(i)).touch()
            if i % 4 == 3:
                _soon(lambda n=name: _left_queue(fr, n))  # type: ignore[misc]
            else:
                _soon(lambda b=before: _lines(resolved) > b)  # type: ignore[misc]
                time.sleep(0.15 * (i % 4))
            lifecycle.kill(fr, name, force=True)
            assert with_word(word) == [], f"round {i}: the killed agent's program runs on"
            assert not fr.agent_dir(name).exists()
            wait_status(fr, f"block{i}", "done")
            assert with_word(word) == [], f"round {i}: the killed agent's program started after kill"


def test_a_sigkilled_agent_is_never_listed_running_and_frees_its_slot(fr: repo_mod.Repo, cli: CliRunner) -> None:
    configure(fr, max_agents="1")
    word = f"victim-{uuid.uuid4().hex[:8]}"
    with cleanup(fr, word):
        spawn(cli, "victim", *SLEEP, word)
        wait_status(fr, "victim", "running")
        spawn(cli, "next", "true")
        assert status(fr, "next") == "queued"
        pid = agents.load(fr, "victim").pid
        assert pid is not None
        os.killpg(pid, signal.SIGKILL)  # the runner and its program, at once
        wait_for("the victim's processes to die", lambda: not with_word(word) and not processes.alive(pid, None))
        listed = cli("list", "--json")
        assert listed.returncode == 0, listed.stderr
        shown = {a["name"]: a["status"] for a in json.loads(listed.stdout)["agents"]}
        assert shown["victim"] == "lost"
        # Its slot is free again: the queued agent starts without waiting for a sweep (60 s here).
        wait_status(fr, "next", "done")


def _sigkill_agent(r: repo_mod.Repo, name: str, word: str) -> None:
    pid = agents.load(r, name).pid
    assert pid is not None
    os.killpg(pid, signal.SIGKILL)  # the runner and its program, at once
    wait_for(f"{name}'s processes to die", lambda: not with_word(word) and not processes.alive(pid, None))


def test_every_face_checks_liveness_http_get_and_list_and_mcp_list(fr: repo_mod.Repo, cli: CliRunner) -> None:
    from test_gateway import Mcp

    words = {name: f"{name}-{uuid.uuid4().hex[:8]}" for name in ("one", "two", "three")}
    with cleanup(fr, *words.values()):
        for name, word in words.items():
            spawn(cli, name, *SLEEP, word)
        for name in words:
            wait_status(fr, name, "running")
        info = daemon.read_info(fr)
        assert info is not None and info.gateway_url
        token = fr.token_path.read_text().strip()

        def http_get(path: str) -> dict[str, Any]:
            conn = http.client.HTTPConnection("127.0.0.1", int(info.url.rsplit(":", 1)[1]), timeout=60)
            conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
            body: dict[str, Any] = json.loads(conn.getresponse().read())
            conn.close()
            return body

        _sigkill_agent(fr, "one", words["one"])
        one = http_get("/v1/agents/one")["agent"]
        assert one["status"] == "lost", one
        _sigkill_agent(fr, "two", words["two"])
        [two] = [a for a in http_get("/v1/agents")["agents"] if a["name"] == "two"]
        assert two["status"] == "lost", two
        _sigkill_agent(fr, "three", words["three"])
        listed = Mcp(info.gateway_url, token).data("fracta_list")
        [three] = [a for a in listed["agents"] if a["name"] == "three"]
        assert three["status"] == "lost", three


def test_joined_agents_do_not_take_spawn_slots(fr: repo_mod.Repo, cli: CliRunner) -> None:
    configure(fr, max_agents="1")
    with cleanup(fr):
        for name in ("by-hand", "also-by-hand"):
            assert cli("join", name).returncode == 0
        spawn(cli, "spawned", "sh", "-c", "echo ran")
        wait_status(fr, "spawned", "done")
        assert status(fr, "by-hand") == "running"


def test_a_queued_agent_shows_its_place_in_the_queue_and_what_it_waits_for(fr: repo_mod.Repo, cli: CliRunner) -> None:
    configure(fr, max_agents="1")
    gate = fr.root.parent / "gate"
    with cleanup(fr):
        spawn(cli, "first", "sh", "-c", f'while [ ! -e "{gate}" ]; do sleep 0.05; done')
        wait_status(fr, "first", "running")
        spawn(cli, "second", "true")
        spawn(cli, "third", "true")
        listed = json.loads(cli("list", "--json").stdout)
        waiting = {a["name"]: a["waiting"] for a in listed["agents"]}
        assert waiting == {
            "first": None,
            "second": "1st in queue, waiting for a slot: 1/1 running",
            "third": "2nd in queue, waiting for a slot: 1/1 running",
        }
        text = cli("list").stdout
        assert "queued (2nd in queue, waiting for a slot: 1/1 running)" in text
        gate.touch()
        for name in ("first", "second", "third"):
            wait_status(fr, name, "done")
        assert all(a["waiting"] is None for a in json.loads(cli("list", "--json").stdout)["agents"])


def test_a_control_plane_started_from_an_agents_shell_survives_killing_that_agent(
    fr: repo_mod.Repo, cli: CliRunner
) -> None:
    word = f"starter-{uuid.uuid4().hex[:8]}"
    with cleanup(fr, word):
        assert cli("up").returncode == 0
        first = daemon.read_info(fr)
        assert first is not None
        # The agent restarts the control plane itself: the new one is started from its shell.
        spawn(cli, "starter", "sh", "-c", f"fracta down && fracta up && exec {NAP} {word}")
        wait_for("a control plane started by the agent", lambda: (i := daemon.read_info(fr)) and i.pid != first.pid)
        wait_for("the agent to settle", lambda: with_word(word))
        second = daemon.read_info(fr)
        assert second is not None
        killed = cli("kill", "starter", "--force")
        assert killed.returncode == 0, killed.stderr
        assert with_word(word) == []
        assert processes.alive(second.pid, None), "killing the agent stopped the control plane it started"
        spawn(cli, "after", "true")
        wait_status(fr, "after", "done")


def test_an_agent_cannot_kill_itself_from_its_own_shell(fr: repo_mod.Repo, cli: CliRunner) -> None:
    with cleanup(fr):
        spawn(cli, "selfish", "sh", "-c", 'fracta kill selfish --force; echo "kill said $?"')
        wait_status(fr, "selfish", "done")
        lines = output_lines(fr, "selfish")
        assert "kill said 5" in lines
        assert any("cannot kill itself" in line for line in lines)
        assert agents.exists(fr, "selfish")
