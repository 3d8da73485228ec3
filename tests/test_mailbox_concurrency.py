"""Concurrency and crash claims of the core, proved with many real processes (tests/helpers/worker.py).

No timing assertions: the processes are made to overlap by a start barrier and by gates that
make one side wait for evidence of the other, never by sleeping and hoping.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from conftest import CliRunner
from helpers.worker import check_body, progress_problem

from fracta import mailbox, project
from fracta import repo as repo_mod
from fracta.errors import CorruptRecord
from fracta.store.files import mailbox as maildir

WORKER = Path(__file__).parent / "helpers" / "worker.py"
WAIT = 240.0  # a bound so a broken run fails instead of hanging; never asserted on


class Crew:
    """Worker processes started in the test repo, synchronised through files in `sync`."""

    def __init__(self, repo_dir: Path, sync: Path) -> None:
        self.repo_dir = repo_dir
        self.sync = sync
        sync.mkdir()
        self.go_file = sync / "go"
        self.stop_file = sync / "stop"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, role: str, label: str, **options: object) -> subprocess.Popen[bytes]:
        argv = [sys.executable, str(WORKER), role, "--go", str(self.go_file), "--stop", str(self.stop_file)]
        argv += ["--ready", str(self.sync / f"{label}.ready"), "--out", str(self.sync / f"{label}.json")]
        for key, value in options.items():
            argv += [f"--{key.replace('_', '-')}", str(value)]
        with open(self.sync / f"{label}.stderr", "wb") as err:
            proc = subprocess.Popen(argv, cwd=self.repo_dir, stdout=subprocess.DEVNULL, stderr=err)
        self.procs[label] = proc
        return proc

    def wait_until(self, condition: Any, what: str) -> None:
        """Poll `condition` while checking that no worker died; fail (not hang) if it never holds."""
        deadline = time.monotonic() + WAIT
        while not condition():
            for label, proc in self.procs.items():
                assert proc.poll() is None, f"{label} exited with {proc.returncode}: {self.stderr(label)}"
            assert time.monotonic() < deadline, f"gave up waiting for {what}"
            time.sleep(0.005)

    def go(self, *labels: str) -> None:
        """Wait until the named workers (default: all) are ready, then release every one at once."""
        wanted = labels or tuple(self.procs)
        self.wait_until(lambda: all((self.sync / f"{x}.ready").exists() for x in wanted), "workers to be ready")
        self.go_file.touch()

    def finish(self, *labels: str) -> dict[str, dict[str, Any]]:
        """Wait for the named workers (default: all); each must succeed. Returns their outputs."""
        outputs = {}
        for label in labels or tuple(self.procs):
            code = self.procs[label].wait(timeout=WAIT)
            assert code == 0, f"{label} exited with {code}: {self.stderr(label)}"
            outputs[label] = json.loads((self.sync / f"{label}.json").read_text())
        return outputs

    def stderr(self, label: str) -> str:
        return (self.sync / f"{label}.stderr").read_text()[-3000:]

    def kill_all(self) -> None:
        """SIGKILL every worker still running (mid-write, for the crash tests)."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=WAIT)


def senders_and_readers(
    crew: Crew, senders: list[str], count: int, readers: int, **reader_options: object
) -> dict[str, dict[str, Any]]:
    """Each sender sends `count` messages to hub while `readers` processes read hub; returns
    what each reader got (readers stop once every sender is done, after one last read).

    Senders send half their messages, then wait at a gate until some reader has claimed a
    message: reading provably overlaps sending, without relying on the scheduler."""
    gate = crew.sync / "gate"
    try:
        for n, sender in enumerate(senders):
            crew.start("send", sender, sender=sender, to="hub", count=count, seed=n, gate=gate)
        for n in range(readers):
            crew.start("read", f"reader{n}", to="hub", gate=gate, **reader_options)
        crew.go()
        crew.finish(*senders)
        crew.stop_file.touch()
        return crew.finish(*(f"reader{n}" for n in range(readers)))
    finally:
        crew.kill_all()


def visible_files(box: Path) -> list[Path]:
    return [box / sub / n for sub in ("new", "cur") for n in sorted(os.listdir(box / sub)) if not n.startswith(".")]


def assert_whole(path: Path) -> tuple[str, int]:
    """A visible message file must parse and carry an intact body; returns (sender, index)."""
    try:
        msg = maildir.parse(path, path.read_bytes(), read=False)
    except CorruptRecord as exc:
        raise AssertionError(f"partial message visible: {exc}") from None
    whole = check_body(msg.body)
    assert whole is not None, f"partial message visible: {path}"
    return whole


def event_lines(repo: repo_mod.Repo) -> list[dict[str, Any]]:
    """Every line of events.jsonl, each of which must be one whole JSON object."""
    raw = repo.events_path.read_bytes()
    assert raw.endswith(b"\n")
    return [json.loads(line) for line in raw.splitlines()]


def progress_row(text: str, name: str) -> list[str]:
    (row,) = [line for line in text.splitlines() if line.startswith(f"| {name} |")]
    return [cell.strip() for cell in row.strip("|").split(" | ")]


def test_sixteen_senders_and_four_readers_deliver_every_message_once_whole_and_in_order(
    initialized: repo_mod.Repo, repo_dir: Path, tmp_path: Path, cli: CliRunner
) -> None:
    repo = initialized
    senders = [f"sender{n}" for n in range(16)]
    for name in ["hub", *senders]:
        project.join(repo, name)
    outputs = senders_and_readers(Crew(repo_dir, tmp_path / "sync"), senders, 200, 4)
    drained = mailbox.read(repo, "hub")
    assert mailbox.acknowledge(repo, "hub", drained.receipt) == len(drained.messages)

    assert drained.problems == []
    assert all(out["problems"] == [] for out in outputs.values())
    by_readers = [m for out in outputs.values() for m in out["messages"]]
    assert by_readers, "the gate guarantees the readers claimed messages while senders were sending"
    everything = by_readers + [
        {"batch": 0, "id": m.id, "from": m.sender, "to": m.to, "body": m.body} for m in drained.messages
    ]
    ids = Counter(m["id"] for m in everything)
    assert [i for i, n in ids.items() if n > 1] == [], "a message was delivered twice"
    seen = []
    for m in everything:
        whole = check_body(m["body"])
        assert whole is not None, f"torn or altered body in {m['id']}: {m['body'][:200]!r}"
        assert (whole[0], m["to"]) == (m["from"], "hub")
        seen.append(whole)
    assert sorted(seen) == sorted((s, i) for s in senders for i in range(200)), "a message was lost"

    # Each read returns its messages in send order: one sender's messages never go backwards.
    batches: dict[tuple[str, int], list[tuple[str, int]]] = defaultdict(list)
    for label, out in outputs.items():
        for m in out["messages"]:
            batches[label, m["batch"]].append(check_body(m["body"]) or ("", -1))
    batches["drain", 0] = [check_body(m.body) or ("", -1) for m in drained.messages]
    for batch in batches.values():
        for sender in senders:
            indexes = [i for s, i in batch if s == sender]
            assert indexes == sorted(indexes)

    box = repo.inbox_dir("hub")
    assert os.listdir(box / "new") == []
    assert len(os.listdir(box / "cur")) == 16 * 200
    assert os.listdir(box / "tmp") == []
    # The event log saw every send and every claim, exactly once, in whole lines.
    events = event_lines(repo)
    assert sum(1 for e in events if e["event"] == "message.sent" and e["to"] == "hub") == 16 * 200
    assert sum(e["count"] for e in events if e["event"] == "inbox.read" and e["agent"] == "hub") == 16 * 200
    # progress.md, regenerated under heavy contention, ends up describing the final state.
    text = repo.progress_path.read_text()
    assert progress_problem(text, ["hub", *senders]) is None
    assert progress_row(text, "hub")[4] == "0"
    listed = cli("list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {a["name"]: a["unread"] for a in json.loads(listed.stdout)["agents"]}["hub"] == 0


def test_a_writer_killed_mid_send_leaves_no_partial_message_and_readers_and_list_still_work(
    initialized: repo_mod.Repo, repo_dir: Path, tmp_path: Path, cli: CliRunner
) -> None:
    repo = initialized
    writers = ["w0", "w1", "w2"]
    for name in ["hub", *writers]:
        project.join(repo, name)
    box = repo.inbox_dir("hub")
    crew = Crew(repo_dir, tmp_path / "sync")
    try:
        # Large bodies, so a good share of each writer's time is spent inside a delivery.
        for n, writer in enumerate(writers):
            crew.start("send", writer, sender=writer, to="hub", count=0, seed=n, min_size=2000, max_size=50000)
        crew.go()
        crew.wait_until(lambda: len(os.listdir(box / "new")) >= 300, "300 messages to be delivered")
        for proc in crew.procs.values():
            os.kill(proc.pid, signal.SIGKILL)
        for proc in crew.procs.values():
            assert proc.wait(timeout=WAIT) == -signal.SIGKILL
    finally:
        crew.kill_all()

    # Every visible file is a whole message, and each writer's messages are a gapless prefix.
    visible = visible_files(box)
    assert len(visible) >= 300
    delivered: dict[str, list[int]] = defaultdict(list)
    for path in visible:
        sender, index = assert_whole(path)
        delivered[sender].append(index)
    for writer in writers:
        assert sorted(delivered[writer]) == list(range(len(delivered[writer])))

    # A dead writer left, in tmp/ only, a torn message (the sweep deletes it) or a whole one
    # (killed between its fsync and its rename: the sweep delivers it, and each writer's
    # messages are still a gapless prefix).
    mailbox.sweep(repo, stale_after=-60, orphan_age=-60)
    assert os.listdir(box / "tmp") == []
    visible = visible_files(box)
    delivered.clear()
    for path in visible:
        sender, index = assert_whole(path)
        delivered[sender].append(index)
    for writer in writers:
        assert sorted(delivered[writer]) == list(range(len(delivered[writer])))

    # The next reader gets exactly the whole messages, and nothing else.
    unread = mailbox.read(repo, "hub")
    assert unread.problems == []
    assert sorted(m.id for m in unread.messages) == sorted(p.name for p in visible)
    assert all(check_body(m.body) for m in unread.messages)

    listed = cli("list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["problems"] == []
    assert cli("list").returncode == 0
    # Locks the dead writers held were released with them: new messages still go through.
    assert cli("say", "hub", "after the crash").returncode == 0
    after = cli("inbox", "hub", "--json")
    assert after.returncode == 0, after.stderr
    assert [m["body"] for m in json.loads(after.stdout)["messages"]] == ["after the crash"]
    assert progress_problem(repo.progress_path.read_text(), ["hub", *writers]) is None
    event_lines(repo)


def test_writers_killed_while_writing_large_messages_never_leave_one_visible(
    initialized: repo_mod.Repo, repo_dir: Path, tmp_path: Path, cli: CliRunner
) -> None:
    """Messages of several MiB take long enough to write that a kill often lands mid-write."""
    repo = initialized
    config = repo.config_path.read_text().replace("max_message_bytes: 65536", "max_message_bytes: 33554432")
    repo.config_path.write_text(config)
    box = repo.inbox_dir("hub")
    project.join(repo, "hub")
    for round_ in range(5):
        writers = [f"round{round_}-w{n}" for n in range(2)]
        for name in writers:
            project.join(repo, name)
        before = len(os.listdir(box / "new"))
        crew = Crew(repo_dir, tmp_path / f"sync{round_}")
        try:
            for n, writer in enumerate(writers):
                crew.start("send", writer, sender=writer, to="hub", seed=n, min_size=1_000_000, max_size=4_000_000)
            crew.go()
            crew.wait_until(lambda: len(os.listdir(box / "new")) >= before + 2, "two large messages")  # noqa: B023
        finally:
            crew.kill_all()
        for path in visible_files(box):
            assert_whole(path)
    unread = mailbox.read(repo, "hub")
    assert unread.problems == []
    assert len(unread.messages) >= 2 * 5
    listed = cli("list")
    assert listed.returncode == 0, listed.stderr


def test_readers_polling_progress_and_agent_records_never_see_a_partial_file(
    initialized: repo_mod.Repo, repo_dir: Path, tmp_path: Path
) -> None:
    repo = initialized
    team = [f"agent{n}" for n in range(4)]
    for name in team:
        project.join(repo, name, intent="waiting")
    crew = Crew(repo_dir, tmp_path / "sync")
    pollers = ["poller0", "poller1"]
    try:
        # Pollers are ready only after a first full pass and stop only after a pass made once every
        # writer had finished: their reading spans all of the writing.
        for label in pollers:
            crew.start("poll", label, agents=",".join(team))
        crew.wait_until(lambda: all((crew.sync / f"{x}.ready").exists() for x in pollers), "pollers")
        for n, sender in enumerate(team):
            crew.start("churn", f"churn{n}", sender=sender, agents=",".join(team), count=60, seed=n)
        crew.go()
        crew.finish(*(f"churn{n}" for n in range(4)))
        crew.stop_file.touch()
        outputs = crew.finish(*pollers)
    finally:
        crew.kill_all()

    for label, out in outputs.items():
        assert out["bad"] == [], f"{label} saw partial files"
        assert out["distinct_progress"] >= 2, "pollers read both before and after the writes"
        assert out["distinct_records"] > len(team)
    intents = [json.loads((repo.agent_dir(n) / "agent.json").read_text())["intent"] for n in team]
    assert all(" step " in intent for intent in intents)
    assert progress_problem(repo.progress_path.read_text(), team) is None
    event_lines(repo)
