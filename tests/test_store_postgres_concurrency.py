"""The PostgreSQL store under real concurrency: many processes claiming, sending and reading at
once on one database, and a claimer SIGKILLed while it holds claims."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from store_helpers import agent, make_repo, mission, open_postgres

from fracta.repo import Repo
from fracta.store.base import Store

WORKER = Path(__file__).with_name("store_worker.py")
TIMEOUT = 240  # seconds for a whole group of workers: generous, never a measure


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return make_repo(tmp_path / "project")


@pytest.fixture
def store(repo: Repo, pg_url: str) -> Iterator[Store]:
    opened = open_postgres(repo, pg_url)
    try:
        yield opened
    finally:
        opened.close()


class Workers:
    """Worker processes (tests/store_worker.py) started together, their output collected."""

    def __init__(self, url: str, repo: Repo, tmp: Path) -> None:
        self.url, self.repo = url, repo
        self.go = tmp / "go"
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, mode: str, *args: str) -> subprocess.Popen[str]:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(WORKER.parent), os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), mode, self.url, str(self.repo.root), str(self.go), *args],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stdout is not None
        assert "ready" in json.loads(proc.stdout.readline() or '{"died": 1}'), f"worker {mode} failed to start"
        self.procs.append(proc)
        return proc

    def release(self) -> None:
        self.go.touch()

    def collect(self, procs: list[subprocess.Popen[str]]) -> list[dict[str, object]]:
        lines: list[dict[str, object]] = []
        for proc in procs:
            assert proc.stdout is not None
            # Not communicate(): with a timeout it reads the pipe itself, and would miss what
            # start()'s readline has already buffered (a worker released at once prints early).
            out = proc.stdout.read()
            proc.wait(timeout=TIMEOUT)
            assert proc.returncode == 0, f"worker {proc.args} exited {proc.returncode}"
            lines += [json.loads(line) for line in out.splitlines()]
        return lines

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


@pytest.fixture
def workers(pg_url: str, repo: Repo, tmp_path: Path) -> Iterator[Workers]:
    group = Workers(pg_url, repo, tmp_path)
    try:
        yield group
    finally:
        group.kill_all()


def once_each(lines: list[dict[str, object]], key: str) -> collections.Counter[str]:
    return collections.Counter(str(line[key]) for line in lines if key in line)


def test_eight_workers_claim_five_hundred_missions_each_exactly_once(store: Store, workers: Workers) -> None:
    queued = {store.missions.enqueue(mission(f"m{i}")).id for i in range(500)}
    procs = [workers.start("claim", f"cp-{w}", "60", "3") for w in range(8)]
    workers.release()
    claimed = once_each(workers.collect(procs), "claimed")
    assert set(claimed) == queued
    assert max(claimed.values()) == 1


def test_sixteen_senders_and_four_readers_read_each_message_exactly_once(
    store: Store, workers: Workers, tmp_path: Path
) -> None:
    store.agents.create(agent("one"), "tok")
    done = tmp_path / "senders-done"
    senders = [workers.start("send", "one", "40") for _ in range(16)]
    readers = [workers.start("read", "one", str(done)) for _ in range(4)]
    workers.release()
    sent = once_each(workers.collect(senders), "sent")
    done.touch()
    got = once_each(workers.collect(readers), "read")
    assert len(sent) == 16 * 40
    assert set(got) == set(sent) and max(got.values()) == 1
    assert store.mail.unread_count("one") == 0
    shown = store.mail.read("one", include_read=True, acked_by=None, held_by="0" * 16, redeliver_after=lambda: 3600.0)
    assert len(shown.messages) == len(sent) and all(m.read for m in shown.messages)


def test_a_killed_claimers_missions_return_after_its_lease_and_run_once_elsewhere(
    store: Store, workers: Workers
) -> None:
    queued = {store.missions.enqueue(mission(f"m{i}")).id for i in range(40)}
    victim = workers.start("hold", "cp-victim", "2", "10")
    workers.release()
    assert victim.stdout is not None
    held: set[str] = set()
    for line in victim.stdout:
        data = json.loads(line)
        if "holding" in data:
            break
        held.add(str(data["claimed"]))
    assert len(held) == 10
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    survivors = [workers.start("claim", f"cp-{w}", "60", "2") for w in range(3)]
    claimed = once_each(workers.collect(survivors), "claimed")
    assert set(claimed) == queued and max(claimed.values()) == 1  # the victim's ten included, once
    assert held <= set(claimed)
