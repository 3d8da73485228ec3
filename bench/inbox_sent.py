"""`fracta inbox --sent`: a sender's messages by the store's index, against reading every inbox, same run.

Run: .venv/bin/python bench/inbox_sent.py [--agents 200] [--each 20] [--reps 20] [--no-postgres]

A project of --agents agents in a ring: each sends --each messages to the next, and the
chessmaster one to each agent. For two senders, the chessmaster (--agents messages) and one agent
(--each messages), it times, as medians over --reps calls:

  scan    what `inbox --sent` did before the index: MailStore.listing of every inbox (the
          chessmaster's and each agent's), keeping the sender's messages. The baseline.
  index   MailStore.sent_by(sender): the files backend's inbox/sent index, or PostgreSQL's
          messages_by_sender. The target row.
  whole   delivery.sent(repo, sender), the whole of `inbox --sent` (the agents' records, the
          index, the wake stories). Context.

On the files backend (the repo under /tmp: a real disk), and on PostgreSQL when its server
binaries are there (tests/pg.py starts a throwaway server, as the test suite does).
Target: index >= 5x as fast as scan for an agent's messages, on each backend.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import pg  # tests/pg.py: the test suite's PostgreSQL server
import store_helpers  # tests/store_helpers.py: a repo's state folder as fracta init leaves it

from fracta import agents, delivery, names
from fracta.records import Delivery
from fracta.repo import Repo

TARGET = 5.0


def populate(repo: Repo, count: int, each: int) -> None:
    """Straight through the store (MailStore.deliver, as mailbox.send stores a message), without
    the events and checks around a send: they are not measured, and would only slow this down."""
    who = [f"agent-{i:03d}" for i in range(count)]
    for name in who:
        agents.create(repo, agents.new(name, "command", agents.Status.RUNNING))
    for i, name in enumerate(who):
        repo.store.mail.deliver(store_helpers.message(name, f"task {i}: please start"), None)
        for n in range(each):
            repo.store.mail.deliver(store_helpers.message(who[(i + 1) % count], f"note {n}", sender=name), None)


def scan(repo: Repo, sender: str) -> list[Delivery]:
    found: list[Delivery] = []
    for name in [names.CHESSMASTER, *repo.store.agents.names()]:
        found += [d for d in repo.store.mail.listing(name) if d.message.sender == sender]
    return sorted(found, key=lambda d: d.message.id)


def median_ms(work: Callable[[], object], reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def measure(label: str, repo: Repo, reps: int) -> bool:
    ok = True
    for sender in (names.CHESSMASTER, "agent-007"):
        by_scan, by_index = scan(repo, sender), repo.store.mail.sent_by(sender)
        assert [d.message.id for d in by_scan] == [d.message.id for d in by_index], "the index disagrees"
        scanned = median_ms(lambda s=sender: scan(repo, s), reps)  # type: ignore[misc]
        indexed = median_ms(lambda s=sender: repo.store.mail.sent_by(s), reps)  # type: ignore[misc]
        whole = median_ms(lambda s=sender: delivery.sent(repo, s), reps)  # type: ignore[misc]
        ratio = scanned / indexed
        meets = sender == names.CHESSMASTER or ratio >= TARGET
        ok = ok and meets
        line = f"{label:9} {sender:12} {len(by_index):4} msgs  scan {scanned:8.2f} ms  index {indexed:7.2f} ms"
        print(f"{line}  ({ratio:5.1f}x)  whole {whole:7.2f} ms  {'' if meets else 'MISSED'}", flush=True)
    return ok


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--each", type=int, default=20)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="fracta-bench-sent-", dir="/tmp"))
    server = None
    ok = True
    try:
        files = store_helpers.make_repo(base / "files")
        populate(files, args.agents, args.each)
        ok = measure("files", files, args.reps) and ok
        bindir = None if args.no_postgres else pg.find_bindir()
        if bindir is None:
            print("postgres  (skipped: no PostgreSQL server binaries, or --no-postgres)")
        else:
            server = pg.start(bindir)
            url = server.url(server.create_database())
            config = f"state:\n  backend: postgres\n  url: {url}\n"
            repo = store_helpers.make_repo(base / "postgres", config)
            populate(repo, args.agents, args.each)
            ok = measure("postgres", repo, args.reps) and ok
            repo.store.close()
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(base, ignore_errors=True)
    print(f"target: index >= {TARGET:.0f}x scan for an agent's messages: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("FRACTA_LOG_LEVEL", "warning")
    sys.exit(main())
