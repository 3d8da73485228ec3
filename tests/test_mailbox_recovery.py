"""Deliveries a crash or a dead sender interrupted: finished by the readers, never torn, never twice.

A send fsyncs the message in tmp/ and then renames it into new/ without a second fsync, so a
crash can leave a whole, acknowledged message in tmp/ (the rename lost) or, on a file system
without a journal, under two names. The on-disk states such a crash leaves are built here with
real files (a message really sent, put back where the crash would have left it), and the last
test races recovering readers against real senders in many processes.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import CliRunner
from helpers.worker import check_body
from test_mailbox_concurrency import Crew, event_lines, senders_and_readers

from fracta import mailbox, project, reaper
from fracta import repo as repo_mod
from fracta.store.files import mailbox as maildir

LONG_AGO = 60.0  # seconds: older than mailbox.ORPHAN_AGE, younger than the reaper's hour


@pytest.fixture
def duo(initialized: repo_mod.Repo) -> repo_mod.Repo:
    for name in ("api", "ui"):
        project.join(initialized, name)
    return initialized


def read(repo: repo_mod.Repo, name: str, *, fresh: bool = True) -> mailbox.Inbox:
    """A read as `fracta inbox` makes it (acknowledged at once), by a new process (one that has not
    looked into this tmp/ lately) unless not `fresh`."""
    reader = repo_mod.find(repo.root, env={}) if fresh else repo
    box = mailbox.read(reader, name)
    mailbox.acknowledge(reader, name, box.receipt)
    return box


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def sent_then_crashed(repo: repo_mod.Repo, body: str, *, ago: float = LONG_AGO) -> tuple[mailbox.Message, Path]:
    """A message `ui` really sent to `api`, left in tmp/ as if a crash had lost its rename."""
    (msg,) = mailbox.send(repo, "ui", "api", body)
    box = repo.inbox_dir("api")
    orphan = box / "tmp" / msg.id
    os.rename(box / "new" / msg.id, orphan)
    age(orphan, ago)
    return msg, orphan


def test_a_whole_message_a_crash_left_in_tmp_is_delivered_once_by_the_next_read(duo: repo_mod.Repo) -> None:
    msg, orphan = sent_then_crashed(duo, "the login endpoint moved")

    first = read(duo, "api")
    assert [(m.id, m.sender, m.body) for m in first.messages] == [(msg.id, "ui", "the login endpoint moved")]
    assert first.problems == []
    assert not orphan.exists()
    assert (duo.inbox_dir("api") / "cur" / msg.id).exists()
    assert read(duo, "api").messages == []
    recovered = [e for e in event_lines(duo) if e["event"] == "message.recovered"]
    assert [(e["agent"], e["id"]) for e in recovered] == [("api", msg.id)]


def test_the_cli_reader_recovers_too_in_send_order(duo: repo_mod.Repo, cli: CliRunner) -> None:
    sent_then_crashed(duo, "one")
    mailbox.send(duo, "ui", "api", "two")
    result = cli("inbox", "api", "--json")
    assert result.returncode == 0, result.stderr
    assert [m["body"] for m in json.loads(result.stdout)["messages"]] == ["one", "two"]


def test_a_message_still_being_sent_is_left_to_its_sender(duo: repo_mod.Repo) -> None:
    _, orphan = sent_then_crashed(duo, "in flight", ago=0)
    assert read(duo, "api").messages == []
    assert orphan.exists()
    assert mailbox.unread_count(duo, "api") == 0


def torn(whole: bytes, other: bytes, how: str) -> bytes:
    if how == "empty":
        return b""
    if how == "cut-short":
        return whole[: len(whole) - 5]
    if how == "zeros":  # the inode was written, its data block was not
        return b"\0" * len(whole)
    if how == "flipped-body":
        return whole[:-1] + bytes([whole[-1] ^ 1])
    if how == "another-message":  # a stale block from another file
        return other
    assert how == "no-checksum"  # a file of the old format: its send never returned either
    return b"".join(line for line in whole.splitlines(keepends=True) if not line.startswith(b"body-crc32: "))


TORN = ("empty", "cut-short", "zeros", "flipped-body", "another-message", "no-checksum")


def test_a_torn_leftover_is_never_delivered_and_the_reaper_deletes_it_after_an_hour(duo: repo_mod.Repo) -> None:
    _, other = sent_then_crashed(duo, "a message to borrow blocks from")
    other_bytes = other.read_bytes()
    read(duo, "api")  # delivers it; its bytes serve as "another message" below
    leftovers: dict[Path, bytes] = {}
    for how in TORN:
        _, orphan = sent_then_crashed(duo, f"this one will be {how}, a body long enough to cut")
        leftovers[orphan] = torn(orphan.read_bytes(), other_bytes, how)
        orphan.write_bytes(leftovers[orphan])
        age(orphan, LONG_AGO)

    box = read(duo, "api")
    assert box.messages == []
    assert box.problems == []  # never a message: nothing to report to the reader
    assert {p: p.read_bytes() for p in leftovers} == leftovers  # left alone
    assert reaper.sweep(duo).cleared == 0  # younger than the reaper's hour

    for path in leftovers:
        age(path, reaper.STALE_AFTER + 1)
    assert reaper.sweep(duo).cleared == len(TORN)
    assert os.listdir(duo.inbox_dir("api") / "tmp") == []
    assert not [e for e in event_lines(duo) if e["event"] == "message.recovered" and e["id"] in leftovers]


def test_the_reaper_delivers_a_whole_orphan_that_nobody_reads(duo: repo_mod.Repo) -> None:
    msg, _ = sent_then_crashed(duo, "for an agent that is not reading")
    assert reaper.sweep(duo).cleared == 1
    assert os.listdir(duo.inbox_dir("api") / "new") == [msg.id]
    assert mailbox.unread_count(duo, "api") == 1


def test_a_sender_whose_message_a_reader_delivered_first_succeeds_once(
    duo: repo_mod.Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader recovers the message between the sender's fsync and its rename (the sender
    stalled there): the sender's rename finds nothing to move, and that is a success."""
    box = duo.inbox_dir("api")
    real_fsync = os.fsync

    def fsync_then_a_reader_recovers(fd: int) -> None:
        real_fsync(fd)
        monkeypatch.setattr(os, "fsync", real_fsync)  # once: the reader's own fsync is the real one
        if os.listdir(box / "tmp"):
            monkeypatch.setattr(maildir, "ORPHAN_AGE", 0.0)
            assert [m.body for m in read(duo, "api", fresh=False).messages] == ["stalled after its fsync"]

    monkeypatch.setattr(os, "fsync", fsync_then_a_reader_recovers)
    (msg,) = mailbox.send(duo, "ui", "api", "stalled after its fsync")
    monkeypatch.undo()

    assert os.listdir(box / "tmp") == [] and os.listdir(box / "new") == []
    assert os.listdir(box / "cur") == [msg.id]
    logged = [(e["event"], e.get("id")) for e in event_lines(duo) if e.get("id") == msg.id]
    assert sorted(logged) == [("message.recovered", msg.id), ("message.sent", msg.id)]


@pytest.mark.parametrize("where", ["new", "cur"])
def test_a_message_a_crash_left_under_two_names_is_delivered_once(duo: repo_mod.Repo, where: str) -> None:
    """Without a journal, tmp/'s old entry and the new one can both survive a crash."""
    (msg,) = mailbox.send(duo, "ui", "api", "twice on disk, once in the inbox")
    box = duo.inbox_dir("api")
    if where == "cur":
        assert len(read(duo, "api").messages) == 1
    os.link(box / where / msg.id, box / "tmp" / msg.id)
    age(box / "tmp" / msg.id, LONG_AGO)

    again = read(duo, "api")
    assert [m.id for m in again.messages] == ([msg.id] if where == "new" else [])
    assert read(duo, "api").messages == []
    assert os.listdir(box / "tmp") == []
    assert os.listdir(box / "cur") == [msg.id]


def test_readers_that_recover_at_once_race_live_senders_and_every_message_arrives_once(
    duo: repo_mod.Repo, repo_dir: Path, tmp_path: Path
) -> None:
    """Readers with ORPHAN_AGE 0 take every whole file they find in tmp/, racing the senders'
    own renames (and each other) on the same files: the rename decides, exactly one wins."""
    senders = [f"sender{n}" for n in range(8)]
    for name in ["hub", *senders]:
        project.join(duo, name)
    outputs = senders_and_readers(Crew(repo_dir, tmp_path / "sync"), senders, 150, 4, orphan_age=0)
    drained = read(duo, "hub", fresh=False)

    got = [m["body"] for out in outputs.values() for m in out["messages"]] + [m.body for m in drained.messages]
    assert all(out["problems"] == [] for out in outputs.values())
    assert drained.problems == []
    wholes = [check_body(body) for body in got]
    assert None not in wholes, "a torn message was delivered"
    counts = Counter(wholes)
    assert [m for m, n in counts.items() if n > 1] == [], "a message was delivered twice"
    assert sorted(counts) == sorted((s, i) for s in senders for i in range(150)), "a message was lost"
    box = duo.inbox_dir("hub")
    assert os.listdir(box / "tmp") == []
    events = event_lines(duo)
    assert sum(1 for e in events if e["event"] == "message.sent" and e["to"] == "hub") == 8 * 150


def test_a_long_lived_reader_looks_into_tmp_again_once_a_tenth_of_orphan_age_has_passed(duo: repo_mod.Repo) -> None:
    reader = repo_mod.find(duo.root, env={})
    assert read(reader, "api", fresh=False).messages == []
    msg, _ = sent_then_crashed(duo, "found on a later look")
    assert read(reader, "api", fresh=False).messages == []  # looked a moment ago: not yet
    reader.tmp_checked["api"] -= maildir.ORPHAN_AGE / 10  # as if that much time had passed
    assert [m.id for m in read(reader, "api", fresh=False).messages] == [msg.id]
