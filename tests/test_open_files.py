"""The descriptors fracta keeps open for its per-message path (atomic._OpenFiles): appends still
reach the file that is there now, and nothing leaks."""

from __future__ import annotations

import json
import os
from pathlib import Path

from fracta import agents, atomic, events, mailbox, project
from fracta import repo as repo_mod


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_appends_follow_a_log_that_was_replaced_or_removed(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    atomic.append_line(log, "one")
    replacement = tmp_path / "new.jsonl"
    replacement.write_text("fresh\n")
    os.replace(replacement, log)  # the kept descriptor now points at an unlinked file
    atomic.append_line(log, "two")
    assert lines(log) == ["fresh", "two"]
    log.unlink()
    atomic.append_line(log, "three")
    assert lines(log) == ["three"]


def test_events_and_messages_reach_an_agent_created_again_under_the_same_name(initialized: repo_mod.Repo) -> None:
    project.join(initialized, "ada")
    project.join(initialized, "bob")
    mailbox.send(initialized, "bob", "ada", "first")
    assert [m.body for m in mailbox.read(initialized, "ada").messages] == ["first"]
    agents.remove(initialized, "ada")  # its inbox folder is gone
    project.join(initialized, "ada")
    mailbox.send(initialized, "bob", "ada", "second")
    assert [m.body for m in mailbox.read(initialized, "ada").messages] == ["second"]
    logged = [json.loads(e) for e in lines(initialized.events_path)]
    assert [e["event"] for e in logged].count("message.sent") == 2


def test_at_most_limit_descriptors_stay_open_and_a_held_one_is_never_closed(tmp_path: Path) -> None:
    kept = atomic._OpenFiles()
    held = kept.hold(str(tmp_path / "held"), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    opened: dict[int, str] = {}
    for i in range(kept.LIMIT * 2):
        path = str(tmp_path / f"f{i}")
        fd = kept.hold(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        opened[fd] = path  # a number closed and given out again keeps its latest file
        kept.release(fd)
    assert len(kept._fds) <= kept.LIMIT
    still_open = [p for fd, p in opened.items() if target(fd) == p]
    assert len(still_open) <= kept.LIMIT  # the others were closed
    os.write(held, b"still mine\n")  # the first one, held all along, was not closed under us
    kept.release(held)
    assert (tmp_path / "held").read_text() == "still mine\n"


def target(fd: int) -> str | None:
    """The file descriptor `fd` refers to now, if it is open."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except FileNotFoundError:
        return None


def test_a_long_line_is_still_appended_whole(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    long = "x" * (atomic.WHOLE_WRITE + 10)
    atomic.append_line(log, "short")
    atomic.append_line(log, long)
    assert lines(log) == ["short", long]


def test_event_records_after_the_log_was_rotated_by_hand(initialized: repo_mod.Repo) -> None:
    events.record(initialized, "test.before")
    os.rename(initialized.events_path, initialized.state / "events.old.jsonl")
    events.record(initialized, "test.after")
    assert [json.loads(e)["event"] for e in lines(initialized.events_path)] == ["test.after"]
