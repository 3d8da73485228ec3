"""A worker process for tests/test_store_postgres_concurrency.py: claims missions, sends or reads
messages on a PostgreSQL store, and prints what it got, one JSON line per item.

    python store_worker.py MODE URL REPO_ROOT GO_FILE [ARGS...]

Every worker waits for GO_FILE to exist before it starts, so they all run at once.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from store_helpers import holder, message

from fracta.repo import Repo
from fracta.store.postgres import open_store


def main() -> None:
    mode, url, root, go = sys.argv[1:5]
    args = sys.argv[5:]
    store = open_store(Repo(Path(root), git_common_dir=None), url, pool_size=2, lease=30.0, retry=30.0)
    print(json.dumps({"ready": os.getpid()}), flush=True)
    while not os.path.exists(go):
        time.sleep(0.01)
    try:
        {"claim": claim, "hold": hold, "send": send, "read": read}[mode](store, args)
    finally:
        store.close()


def claim(store, args: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Claim (and finish) missions until none is left in the queue, claimed or not."""
    owner, lease, batch = args[0], float(args[1]), int(args[2])
    while True:
        got = store.missions.claim(owner, lease, batch)
        for mission in got:
            print(json.dumps({"claimed": mission.id}), flush=True)
            store.missions.remove(mission)
        if got:
            continue
        left = store.db.run(lambda c: c.execute("SELECT count(*) FROM missions").fetchone()[0])
        if left == 0:
            return
        time.sleep(0.02)


def hold(store, args: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Claim missions and keep them without finishing: the test kills this process."""
    owner, lease, count = args[0], float(args[1]), int(args[2])
    for mission in store.missions.claim(owner, lease, count):
        print(json.dumps({"claimed": mission.id}), flush=True)
    print(json.dumps({"holding": True}), flush=True)
    time.sleep(3600)


def send(store, args: list[str]) -> None:  # type: ignore[no-untyped-def]
    to, count = args[0], int(args[1])
    for i in range(count):
        sent = store.mail.deliver(message(to, f"{os.getpid()}-{i}"), None)
        print(json.dumps({"sent": sent.id}), flush=True)


def read(store, args: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Read as the real flow does: each read acknowledges the previous one by its receipt, until
    DONE_FILE exists and a read finds nothing; then acknowledge the last read."""
    name, done = args[0], args[1]
    acked_by: tuple[str, int] | None = None
    while True:
        finished = os.path.exists(done)
        held_by = holder()
        got = store.mail.read(
            name, include_read=False, acked_by=acked_by, held_by=held_by, redeliver_after=lambda: 3600.0
        )
        for msg in got.messages:
            print(json.dumps({"read": msg.id}), flush=True)
        acked_by = (held_by, got.stamp)
        if not got.messages:
            if finished:
                break
            time.sleep(0.01)
    store.mail.acknowledge(name, acked_by)


if __name__ == "__main__":
    main()
