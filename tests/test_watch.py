"""States, delivery and `fracta watch` with real command agents under a real control plane."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import CliRunner
from lifecycle_helpers import cleanup, spawn, use_free_port, wait_for

from fracta import agents, delivery, events, liveness, mailbox, results
from fracta import repo as repo_mod
from fracta.cli import watch
from fracta.control import daemon

pytestmark = [pytest.mark.both_backends, pytest.mark.timeout(240)]
PY = sys.executable


@pytest.fixture
def fr(initialized: repo_mod.Repo, monkeypatch: pytest.MonkeyPatch) -> repo_mod.Repo:
    """Agents stall after 1 s of silence; a free port; fracta's CLI on the agents' PATH."""
    cfg = initialized.config_path
    cfg.write_text(cfg.read_text().replace("stall_after: 300", "stall_after: 1"))
    use_free_port(initialized)
    monkeypatch.setenv("PATH", f"{Path(PY).parent}{os.pathsep}{os.environ['PATH']}")
    return repo_mod.find(initialized.root, env={**os.environ})


def state(r: repo_mod.Repo, name: str) -> tuple[str, str]:
    found, problems = liveness.checked(r)
    view = next(v for v in results.agent_list(r, found, problems)["agents"] if v["name"] == name)
    return view["state"], view["state_reason"]


def reaches(r: repo_mod.Repo, name: str, wanted: str, said: str = "") -> str:
    """Wait until `name` is in state `wanted` with `said` in its reason; the reason."""
    got: list[tuple[str, str]] = []

    def check() -> bool:
        got[:] = [state(r, name)]
        return got[0][0] == wanted and said in got[0][1]

    wait_for(f"{name} to be {wanted} ({said})", check, explain=lambda: f"last seen: {got}")
    return got[0][1]


def test_command_agents_are_working_stalled_recovered_asking_done_and_failed(
    fr: repo_mod.Repo, cli: CliRunner, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    quiet = f"echo started; until [ -e {go} ]; do sleep 0.05; done"  # prints once, then nothing
    chatty = f"while [ ! -e {tmp_path / 'stop'} ]; do echo tick; sleep 0.1; done"
    cfg = fr.config_path  # unread messages flagged after 1 s, looked for every second
    cfg.write_text(
        cfg.read_text()
        .replace("unread_alert: 600", "unread_alert: 1")
        .replace("sweep_interval: 60", "sweep_interval: 1")
    )
    with cleanup(fr):
        spawn(cli, "quiet", "sh", "-c", f"{quiet}; {chatty}")
        assert "no output for" in reaches(fr, "quiet", "stalled")
        go.touch()  # it prints again: working, no longer stalled
        assert "last output" in reaches(fr, "quiet", "working")

        ping = json.loads(cli("say", "quiet", "are you there?", "--json").stdout)["sent"][0]["id"]
        flagged = lambda: [e.data for e in events.read(fr) if e.data["event"] == "message.unread"]  # noqa: E731
        wait_for("the control plane to flag the unread message", flagged)
        assert [(e["agent"], e["id"]) for e in flagged()] == [("quiet", ping)]
        assert "unread for" in cli("inbox", "--sent", "chessmaster").stdout

        spawn(cli, "asker", "sh", "-c", f"fracta say chessmaster 'which database?'; {chatty}")
        assert reaches(fr, "asker", "needs-you", "asked") == "asked: which database?"
        assert cli("inbox", "chessmaster").returncode == 0  # read: it no longer waits for you
        reaches(fr, "asker", "working")

        spawn(cli, "crasher", "sh", "-c", "echo trying; exit 3")
        assert "failed" in reaches(fr, "crasher", "needs-you", "failed")
        (tmp_path / "stop").touch()
        reaches(fr, "quiet", "done")
        spawn(cli, "after", "sh", "-c", "echo ok")  # the chessmaster acts after the failure: seen
        reaches(fr, "crasher", "failed")
        reaches(fr, "after", "done", "finished")

        once = cli("watch", "--once")
        assert once.returncode == 0, once.stderr
        names = {"quiet", "asker", "crasher", "after"}
        rows = {
            line.split()[0]: line.split()[1]
            for line in once.stdout.splitlines()
            if line.split()[0] in names and not line.startswith(" ")
        }
        assert rows["crasher"] == "failed" and rows["after"] == "done" and rows["quiet"] == "done", once.stdout
        assert once.stdout.splitlines()[-1].startswith("agents 4: ")
        progress = fr.progress_path.read_text()
        assert "| crasher | failed |" in progress and "| failed (failed: " in progress, progress
        assert "agents 4: " in progress
        assert [(e["agent"], e["id"]) for e in flagged()] == [("quiet", ping)]  # once, over many sweeps


def watching(r: repo_mod.Repo) -> subprocess.Popen[bytes]:
    """`fracta watch` in a subprocess, its output piped (so its views come one after another)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [PY, "-m", "fracta", "watch"], cwd=r.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )


def test_fracta_watch_redraws_when_an_agent_is_spawned_and_ends_on_ctrl_c(fr: repo_mod.Repo, cli: CliRunner) -> None:
    with cleanup(fr):
        spawn(cli, "first", "sh", "-c", "echo one")  # starts the control plane
        info = daemon.read_info(fr)
        assert info is not None
        with watching(fr) as proc:
            assert proc.stdout is not None and proc.stderr is not None
            seen: list[bytes] = []
            out = proc.stdout
            reader = threading.Thread(target=lambda: seen.extend(iter(out.readline, b"")), daemon=True)
            reader.start()
            try:
                wait_for("a live view", lambda: any(f"live: {info.url}".encode() in line for line in seen))
                spawn(cli, "second", "sh", "-c", "echo two")
                wait_for("the new agent in the view", lambda: any(line.startswith(b"second ") for line in seen))
            finally:
                proc.send_signal(signal.SIGINT)
                code = proc.wait(timeout=60)
                reader.join(timeout=60)
            errors = proc.stderr.read()
            assert code == 0 and b"Traceback" not in errors, errors


def test_fracta_watch_without_a_control_plane_reads_the_store_and_says_so(fr: repo_mod.Repo) -> None:
    agents.create(fr, agents.new("alone", runtime="command", status=agents.Status.DONE))
    assert daemon.read_info(fr) is None
    with watching(fr) as proc:
        assert proc.stdout is not None
        head = proc.stdout.readline().decode()
        assert "control plane not running: reading the store" in head
        assert proc.stdout.readline().split()[:2] == [b"NAME", b"STATE"]
        assert proc.stdout.readline().split()[:2] == [b"alone", b"done"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0


def test_a_watch_frame_fits_the_terminal(fr: repo_mod.Repo) -> None:
    for n in range(12):
        intent = "a long intent that would not fit in a narrow terminal at all " * 2
        agents.create(fr, agents.new(f"agent-{n:02}", runtime="command", status=agents.Status.DONE, intent=intent))
    text = watch.frame(fr, 60, 8, "test")
    lines = text.splitlines()
    assert len(lines) == 8 and all(len(line) <= 60 for line in lines), text
    assert lines[0].startswith("fracta watch") and lines[-1].startswith("agents 12: 12 done")
    assert lines[-2].startswith("… ") and "more lines" in lines[-2]
    whole = watch.frame(fr, None, None, "test").splitlines()
    assert len(whole) == 12 + 3 and any(len(line) > 60 for line in whole)


def test_say_to_a_stopped_agent_keeps_the_message_warns_and_inbox_sent_follows_it(
    fr: repo_mod.Repo, cli: CliRunner
) -> None:
    agents.create(
        fr,
        agents.new("capped", runtime="claude", status=agents.Status.IDLE, session_id="s", stopped="its budget reached"),
    )
    said = cli("say", "capped", "carry on")
    assert said.returncode == 0 and "sent to capped" in said.stdout, said.stderr  # stored: nothing refused
    assert "undeliverable to capped: capped was stopped" in said.stderr
    told = json.loads(cli("say", "*", "everyone?", "--json").stdout)  # a broadcast reports it the same way
    assert told["undeliverable"] == {"capped": "capped was stopped (its budget reached) and will not be woken"}
    sent = cli("inbox", "--sent", "chessmaster")
    assert sent.returncode == 0 and "undeliverable: capped was stopped" in sent.stdout, sent.stdout
    data = json.loads(cli("inbox", "--sent", "chessmaster", "--json").stdout)
    assert [(m["to"], m["state"]) for m in data["messages"]] == [("capped", "undeliverable")] * 2


def test_a_messages_read_time_is_when_its_reading_was_confirmed(fr: repo_mod.Repo) -> None:
    agents.create(fr, agents.new("reader", runtime="command", status=agents.Status.RUNNING))
    mailbox.send(fr, "chessmaster", "reader", "hello")
    box = mailbox.read(fr, "reader")
    [handed] = fr.store.mail.listing("reader")
    before = time.time_ns()
    mailbox.acknowledge(fr, "reader", box.receipt)
    after = time.time_ns()
    [read] = fr.store.mail.listing("reader")
    assert (handed.state, read.state) == ("handed", "read")
    assert handed.at_ns is not None and read.at_ns is not None and handed.at_ns <= before
    # On the files backend the read time is the inode's change time, stamped by the kernel's
    # coarse clock: it may lag time.time_ns() by a tick (a few milliseconds), never more.
    tick = 50_000_000
    assert before - tick <= read.at_ns <= after + tick
    [shown] = delivery.sent(fr, "chessmaster")
    assert shown.state == "read" and shown.at is not None and f"read by reader at {shown.at}" == shown.reason
