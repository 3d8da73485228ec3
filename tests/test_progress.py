"""progress.md regeneration: synchronous in the CLI, coalesced in long-lived processes."""

from __future__ import annotations

import dataclasses
import multiprocessing
import threading
from pathlib import Path

import pytest
from lifecycle_helpers import wait_for

from fracta import atomic, mailbox, progress, project
from fracta import repo as repo_mod


def test_a_coalescer_covers_every_change_of_a_burst_from_many_threads(initialized: repo_mod.Repo) -> None:
    project.join(initialized, "sink")
    sink = progress.Coalescer(delay=0.01)
    r = dataclasses.replace(initialized, progress_sink=sink)
    threads = [
        threading.Thread(target=lambda: [mailbox.send(r, "chessmaster", "sink", "hi") for _ in range(25)])
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # The last regeneration after the burst shows all 100 unread messages.
    wait_for(
        "progress.md to show 100 unread", lambda: "| sink | running | - | - | 100 |" in r.progress_path.read_text()
    )


def test_flush_regenerates_at_once_and_a_sinkless_repo_is_synchronous(initialized: repo_mod.Repo) -> None:
    project.join(initialized, "quick")
    mailbox.send(initialized, "chessmaster", "quick", "sync")
    assert "| quick | running | - | - | 1 |" in initialized.progress_path.read_text()
    sink = progress.Coalescer(delay=3600)  # its thread would wait an hour: only flush can write
    r = dataclasses.replace(initialized, progress_sink=sink)
    mailbox.send(r, "chessmaster", "quick", "deferred")
    sink.flush()
    assert "| quick | running | - | - | 2 |" in r.progress_path.read_text()


def _send_coalesced(root: str, sender: str, count: int) -> None:
    sink = progress.Coalescer(delay=0.005)
    r = dataclasses.replace(repo_mod.find(Path(root), env={}), progress_sink=sink)
    for _ in range(count):
        mailbox.send(r, sender, "sink", "hi")
    # As the control plane and the gateway do on the way out: when another process's
    # regeneration started after our last change, this returns without writing.
    sink.flush()


def test_coalescers_in_many_processes_cover_every_change(initialized: repo_mod.Repo) -> None:
    project.join(initialized, "sink")
    senders = [f"s{i}" for i in range(6)]
    for name in senders:
        project.join(initialized, name)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_send_coalesced, args=(str(initialized.root), s, 40)) for s in senders]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    text = initialized.progress_path.read_text()
    assert "| sink | running | - | - | 240 |" in text


def test_a_coalescer_that_finds_another_regeneration_under_way_looks_again_and_covers_its_change(
    initialized: repo_mod.Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It does not wait on the lock: it comes back BUSY_RETRY later, and still covers its change
    if the other holder's regeneration did not (here the holder regenerates nothing at all)."""
    project.join(initialized, "busy")
    busy_seen = threading.Event()
    real_regenerate = progress.regenerate

    def regenerate(repo: repo_mod.Repo, requested: int | None = None, *, wait: bool = True) -> bool:
        done = real_regenerate(repo, requested, wait=wait)
        if not done:
            busy_seen.set()
        return done

    monkeypatch.setattr(progress, "regenerate", regenerate)
    sink = progress.Coalescer(delay=0.005)
    r = dataclasses.replace(initialized, progress_sink=sink)
    with atomic.lock(initialized.state / "progress.lock"):  # as another process regenerating
        mailbox.send(r, "chessmaster", "busy", "while the lock is held")
        wait_for("the coalescer to find the lock held", busy_seen.is_set)
        assert "| busy | running | - | - | 1 |" not in r.progress_path.read_text()
    wait_for("progress.md to show the message", lambda: "| busy | running | - | - | 1 |" in r.progress_path.read_text())
