"""Exactly once as the reader sees it: a retried send is stored once, a lost read is handed out again.

The states a crash leaves are built with real files (a message really sent, put back where the
crash would have left it); tests/test_messages_across_crashes.py does the same with real SIGKILLs.
"""

from __future__ import annotations

import json
import os
import time

import pytest
from conftest import CliRunner

from fracta import mailbox, project
from fracta import repo as repo_mod
from fracta.errors import EXIT_CONFLICT, IdempotencyConflict, InvalidInput
from fracta.store.files import mailbox as maildir


@pytest.fixture
def duo(initialized: repo_mod.Repo) -> repo_mod.Repo:
    for name in ("api", "ui"):
        project.join(initialized, name)
    return initialized


def files(repo: repo_mod.Repo, name: str, sub: str) -> list[str]:
    folder = repo.inbox_dir(name) / sub
    return sorted(os.listdir(folder)) if folder.is_dir() else []


def test_a_send_repeated_with_its_key_is_stored_once_and_returns_the_first(duo: repo_mod.Repo) -> None:
    (first,) = mailbox.send(duo, "ui", "api", "the form is ready", key="form-1")
    (again,) = mailbox.send(duo, "ui", "api", "the form is ready", key="form-1")
    assert not first.duplicate and again.duplicate
    assert (again.id, again.body, again.sent_at) == (first.id, first.body, first.sent_at)
    assert files(duo, "api", "new") == [first.id]
    # The same key from another sender, or a new key, is another message.
    project.join(duo, "db")
    (other,) = mailbox.send(duo, "db", "api", "the form is ready", key="form-1")
    (fresh,) = mailbox.send(duo, "ui", "api", "the form is ready", key="form-2")
    assert not other.duplicate and not fresh.duplicate
    assert files(duo, "api", "new") == sorted([first.id, other.id, fresh.id])


def test_a_key_reused_for_another_message_is_refused_and_stores_nothing(duo: repo_mod.Repo, cli: CliRunner) -> None:
    mailbox.send(duo, "ui", "api", "first text", key="k")
    with pytest.raises(IdempotencyConflict, match="already used for another message"):
        mailbox.send(duo, "ui", "api", "second text", key="k")
    refused = cli("say", "api", "second text", "--from", "ui", "--idempotency-key", "k")
    assert refused.returncode == EXIT_CONFLICT and "hint:" in refused.stderr
    assert len(files(duo, "api", "new")) == 1 and files(duo, "api", "tmp") == []
    for bad in ("", "two\nlines", "x" * 201):
        with pytest.raises(InvalidInput):
            mailbox.send(duo, "ui", "api", "text", key=bad)
    assert len(files(duo, "api", "new")) == 1


def test_an_identical_call_is_a_retry_within_the_window_and_a_new_message_after(duo: repo_mod.Repo) -> None:
    (first,) = mailbox.send(duo, "ui", "api", "ping", same_call_within=600)
    (retry,) = mailbox.send(duo, "ui", "api", "ping", same_call_within=600)
    assert retry.duplicate and retry.id == first.id
    (other_text,) = mailbox.send(duo, "ui", "api", "ping!", same_call_within=600)
    assert not other_text.duplicate
    time.sleep(0.01)
    (later,) = mailbox.send(duo, "ui", "api", "ping", same_call_within=0.005)  # older than this window: new
    assert not later.duplicate
    (retry_of_later,) = mailbox.send(duo, "ui", "api", "ping", same_call_within=600)
    assert retry_of_later.id == later.id
    assert files(duo, "api", "new") == sorted([first.id, other_text.id, later.id])
    # Without a window or a key, sends are never merged (the CLI and the library's default).
    mailbox.send(duo, "ui", "api", "ping")
    assert len(files(duo, "api", "new")) == 4


def test_a_retry_finishes_a_send_that_died_after_its_commit_and_before_its_rename(duo: repo_mod.Repo) -> None:
    (msg,) = mailbox.send(duo, "ui", "api", "half delivered", key="h")
    box = duo.inbox_dir("api")
    os.rename(box / "new" / msg.id, box / "tmp" / msg.id)  # where the crash left it (its key link made)
    (retry,) = mailbox.send(duo, "ui", "api", "half delivered", key="h")
    assert retry.duplicate and retry.id == msg.id
    assert files(duo, "api", "new") == [msg.id] and files(duo, "api", "tmp") == []


def test_a_keyed_message_whose_sender_died_before_its_commit_is_never_delivered(duo: repo_mod.Repo) -> None:
    (msg,) = mailbox.send(duo, "ui", "api", "never committed", key="n")
    box = duo.inbox_dir("api")
    os.unlink(box / "keys" / msg.dedup_key)  # type: ignore[operator]
    os.rename(box / "new" / msg.id, box / "tmp" / msg.id)  # whole, but the sender died before its link
    then = time.time() - 60
    os.utime(box / "tmp" / msg.id, (then, then))
    assert mailbox.sweep(duo, stale_after=3600) == 0  # not delivered: its send never returned
    assert files(duo, "api", "new") == []
    (retry,) = mailbox.send(duo, "ui", "api", "never committed", key="n")  # the sender's retry stores it
    assert not retry.duplicate and files(duo, "api", "new") == [retry.id]
    assert mailbox.sweep(duo, stale_after=30) == 1  # the dead attempt's leftover, torn by our rules, goes
    assert files(duo, "api", "tmp") == [] and files(duo, "api", "new") == [retry.id]


def test_a_read_is_held_until_acknowledged_and_a_repeated_call_gets_it_again(duo: repo_mod.Repo) -> None:
    for text in ("one", "two"):
        mailbox.send(duo, "ui", "api", text)
    first = mailbox.read(duo, "api")
    assert [m.body for m in first.messages] == ["one", "two"]
    assert files(duo, "api", "new") == [] and files(duo, "api", "cur") == []
    assert len(files(duo, "api", "pending")) == 2
    mailbox.send(duo, "ui", "api", "three")
    second = mailbox.read(duo, "api", ack=first.receipt)  # acknowledges one and two
    assert [m.body for m in second.messages] == ["three"]
    assert files(duo, "api", "cur") == sorted(m.id for m in first.messages)
    # second's result was lost: the reader calls again with the same ack and gets it again, once.
    mailbox.send(duo, "ui", "api", "four")
    repeated = mailbox.read(duo, "api", ack=first.receipt)
    assert repeated.receipt.split("-")[0] == second.receipt.split("-")[0]  # the same holder, a later time
    assert [m.body for m in repeated.messages] == ["three", "four"]
    last = mailbox.read(duo, "api", ack=repeated.receipt)
    assert last.messages == [] and files(duo, "api", "pending") == []
    assert len(files(duo, "api", "cur")) == 4
    assert mailbox.acknowledge(duo, "api", last.receipt) == 0  # nothing to acknowledge, and no harm


def test_a_delivery_never_acknowledged_is_handed_out_again_after_the_timeout_only(duo: repo_mod.Repo) -> None:
    mailbox.send(duo, "ui", "api", "lost in transit")
    lost = mailbox.read(duo, "api")  # its reader never got the result, and starts over without an ack
    assert mailbox.read(duo, "api", redeliver_after=3600).messages == []  # held: not handed out twice
    again = mailbox.read(duo, "api", redeliver_after=0)
    assert [m.id for m in again.messages] == [m.id for m in lost.messages]
    assert mailbox.read(duo, "api", redeliver_after=3600).messages == []  # held again, by the new receipt
    assert mailbox.acknowledge(duo, "api", lost.receipt) == 0  # the old receipt no longer holds it
    assert mailbox.acknowledge(duo, "api", again.receipt) == 1
    assert files(duo, "api", "cur") == [lost.messages[0].id]


def test_concurrent_readers_each_hold_their_own_messages(duo: repo_mod.Repo) -> None:
    mailbox.send(duo, "ui", "api", "for a")
    a = mailbox.read(duo, "api")
    mailbox.send(duo, "ui", "api", "for b")
    b = mailbox.read(duo, "api")
    assert [m.body for m in a.messages] == ["for a"] and [m.body for m in b.messages] == ["for b"]
    # a's next read acknowledges a's messages only; b's stay held for b.
    assert mailbox.read(duo, "api", ack=a.receipt).messages == []
    assert [n.split("+")[0] for n in files(duo, "api", "pending")] == [b.messages[0].id]
    shown = mailbox.read(duo, "api", include_read=True)
    assert [(m.body, m.read) for m in shown.messages] == [("for a", True), ("for b", True)]


def test_a_bad_receipt_is_refused_with_a_hint(duo: repo_mod.Repo, cli: CliRunner) -> None:
    for bad in ("", "not-a-receipt", "ABCDEF0123456789-1", "0" * 16, "0" * 16 + "-", "0" * 16 + "-²", "0" * 17 + "-1"):
        with pytest.raises(InvalidInput, match="not a receipt"):
            mailbox.read(duo, "api", ack=bad)
        with pytest.raises(InvalidInput, match="not a receipt"):
            mailbox.acknowledge(duo, "api", bad)


def test_the_cli_marks_messages_read_once_printed_and_say_takes_a_key(duo: repo_mod.Repo, cli: CliRunner) -> None:
    for _ in range(2):
        said = cli("say", "api", "deploy at noon", "--idempotency-key", "deploy-1", "--json")
        assert said.returncode == 0, said.stderr
    assert json.loads(said.stdout)["duplicates"] == [json.loads(said.stdout)["sent"][0]["id"]]
    again = cli("say", "api", "deploy at noon", "--idempotency-key", "deploy-1")
    assert "already sent to api" in again.stdout
    shown = cli("inbox", "api", "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert [m["body"] for m in data["messages"]] == ["deploy at noon"] and len(data["receipt"].split("-")[0]) == 16
    assert files(duo, "api", "pending") == [] and len(files(duo, "api", "cur")) == 1
    assert json.loads(cli("inbox", "api", "--json").stdout)["messages"] == []


def test_an_acknowledgement_covers_what_its_result_held_and_the_next_read_takes_over_a_duplicates(
    duo: repo_mod.Repo,
) -> None:
    mailbox.send(duo, "ui", "api", "one")
    start = mailbox.read(duo, "api")
    answered = mailbox.read(duo, "api", ack=start.receipt)  # the result the reader got: nothing yet
    mailbox.send(duo, "ui", "api", "two")
    late = mailbox.read(duo, "api", ack=start.receipt)  # a duplicate of that call, handled after it
    assert [m.body for m in late.messages] == ["two"]  # its result goes nowhere: the reader got `answered`
    following = mailbox.read(duo, "api", ack=answered.receipt)  # acknowledges `answered`: not "two"
    assert [m.body for m in following.messages] == ["two"]
    assert mailbox.read(duo, "api", ack=following.receipt).messages == []
    assert len(files(duo, "api", "cur")) == 2 and files(duo, "api", "pending") == []


def test_a_run_that_ends_well_acknowledges_what_its_reads_handed_out(duo: repo_mod.Repo) -> None:
    mailbox.send(duo, "ui", "api", "before the run")
    earlier = mailbox.read(duo, "api")  # a read of an earlier run that never acknowledged
    started = time.time_ns()
    mailbox.send(duo, "ui", "api", "during the run")
    during = mailbox.read(duo, "api")  # the run's last read: nothing later acknowledges it
    assert [m.body for m in earlier.messages] == ["before the run"]
    assert [m.body for m in during.messages] == ["during the run"]
    assert mailbox.acknowledge_run(duo, "api", started) == 1
    assert files(duo, "api", "cur") == [during.messages[0].id]
    # The earlier run's unacknowledged message is still handed out again after the timeout.
    again = mailbox.read(duo, "api", redeliver_after=0)
    assert [m.body for m in again.messages if not m.read] == ["before the run"]


def test_a_late_copy_of_a_read_whose_result_was_already_acknowledged_claims_nothing(duo: repo_mod.Repo) -> None:
    start = mailbox.read(duo, "api")
    answered = mailbox.read(duo, "api", ack=start.receipt)  # the retry, answered first
    following = mailbox.read(duo, "api", ack=answered.receipt)  # the reader went on: answered is acknowledged
    mailbox.send(duo, "ui", "api", "sent meanwhile")
    # The call `answered` retried, run only now (it sat in a server's queue): nobody would see its result.
    with pytest.raises(IdempotencyConflict, match="already acknowledged") as refused:
        mailbox.read(duo, "api", ack=start.receipt)
    assert refused.value.exit_code == EXIT_CONFLICT and "latest read" in (refused.value.hint or "")
    assert len(files(duo, "api", "new")) == 1 and files(duo, "api", "pending") == []
    assert [m.body for m in mailbox.read(duo, "api", ack=following.receipt).messages] == ["sent meanwhile"]
    # A read repeated before its result is acknowledged is still a retry (the receipts are untouched).
    again = mailbox.read(duo, "api", ack=following.receipt)
    assert [m.body for m in again.messages] == ["sent meanwhile"]


def test_the_acknowledged_holders_are_kept_bounded_and_the_latest_always_recognised(
    duo: repo_mod.Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(maildir, "ACKED_MAX_BYTES", 17 * 8)  # eight holders' lines before a trim
    acked = duo.inbox_dir("api") / "acked"
    receipts = [mailbox.read(duo, "api").receipt]
    for _ in range(30):
        receipts.append(mailbox.read(duo, "api", ack=receipts[-1]).receipt)
    lines = acked.read_text().splitlines()
    assert 4 <= len(lines) <= 9 and all(len(line) == 16 for line in lines)  # trimmed at line boundaries
    # The read whose result the last read acknowledged is still known: a late copy of it is refused.
    with pytest.raises(IdempotencyConflict):
        mailbox.read(duo, "api", ack=receipts[-3])
    # One that long forgotten is not: it is served as a retry (what it claims waits for redelivery).
    mailbox.read(duo, "api", ack=receipts[0])
