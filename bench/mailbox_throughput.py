"""Message throughput: fracta send + read per second, against the raw limit of the disk, same run.

Run: .venv/bin/python bench/mailbox_throughput.py [--seconds 2] [--rounds 3] [--procs 1,8]

For each process count, in alternating rounds (so a noisy disk hurts both sides alike):
  raw     each process loops: write a file of the message's size into tmp/, fsync it, rename it
          into new/ (the floor a durable Maildir delivery cannot beat);
  raw+dir the same plus an fsync of new/ (what "durable before send returns" costs at least);
  fracta  each process p loops: fracta.mailbox.send(sender-p -> reader-p), then
          fracta.mailbox.read(reader-p), which must return that one message.
Every fracta message is durable when send returns, marked read exactly once, and progress.md
and events.jsonl are updated after every call, exactly as in normal use. The figure is the
median over rounds; the ratio is fracta / raw. Target: fracta >= 50% of raw.

Everything happens in a temporary folder under /tmp (a real disk: fsync matters), removed at
the end.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fracta import mailbox, project
from fracta import repo as repo_mod

BODY = "Please rebase on main: the login endpoint moved to /api/v2/login, tests updated. " * 3
TARGET = 0.50
Worker = Callable[[Path, int, float], int]


def raw_worker(folder: Path, index: int, deadline: float, fsync_dir: bool, size: int) -> int:
    """write + fsync + rename of a `size`-byte file in a loop until `deadline`; returns the count."""
    tmp, new = folder / f"raw-{index}" / "tmp", folder / f"raw-{index}" / "new"
    tmp.mkdir(parents=True)
    new.mkdir()
    data = b"x" * size
    count = 0
    while time.perf_counter() < deadline:
        name = f"{index}.{count}"
        fd = os.open(tmp / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp / name, new / name)
        if fsync_dir:
            dfd = os.open(new, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        count += 1
    return count


def fracta_worker(folder: Path, index: int, deadline: float) -> int:
    """send one message and read it back, in a loop until `deadline`; returns the count."""
    r = repo_mod.find(folder / "repo", env={})
    sender, reader = f"sender-{index}", f"reader-{index}"
    count = 0
    while time.perf_counter() < deadline:
        mailbox.send(r, sender, reader, BODY)
        box = mailbox.read(r, reader)
        if len(box.messages) != 1 or box.problems:
            raise SystemExit(f"{reader} read {len(box.messages)} messages and {len(box.problems)} problems, not 1")
        count += 1
    return count


def _child(work: Worker, folder: Path, index: int, seconds: float, start: Any, out: Any) -> None:
    start.wait()
    began = time.perf_counter()
    count = work(folder, index, began + seconds)
    out.put((count, time.perf_counter() - began))


def measure(work: Worker, folder: Path, procs: int, seconds: float) -> float:
    """Operations per second of `procs` processes running `work` at once."""
    ctx = mp.get_context("fork")
    start, out = ctx.Barrier(procs), ctx.Queue()
    children = [ctx.Process(target=_child, args=(work, folder, i, seconds, start, out)) for i in range(procs)]
    for child in children:
        child.start()
    results: list[tuple[int, float]] = [out.get(timeout=seconds * 10 + 60) for _ in children]
    for child in children:
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"a worker failed with exit code {child.exitcode}")
    # Each process ran for `seconds` (its last operation may overrun a little): sum of per-process rates.
    return sum(count / elapsed for count, elapsed in results)


def make_repo(folder: Path, procs: int) -> None:
    root = folder / "repo"
    root.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    r = repo_mod.find(root, env={})
    project.init(r)
    for i in range(procs):
        project.join(r, f"sender-{i}", intent="send messages as fast as possible")
        project.join(r, f"reader-{i}", intent="read them as fast as possible")


def check_delivery(folder: Path, procs: int) -> None:
    """Every message sent was read exactly once: new/ is empty, cur/ holds them all."""
    r = repo_mod.find(folder / "repo", env={})
    for i in range(procs):
        box = r.inbox_dir(f"reader-{i}")
        unread = os.listdir(box / "new")
        if unread:
            raise SystemExit(f"reader-{i} left {len(unread)} unread messages")


def message_size() -> int:
    msg = mailbox.Message(mailbox._new_id(), "sender-0", "reader-0", "2025-01-01T00:00:00.000Z", BODY)
    return len(msg.render())


def run(base: Path, procs: int, seconds: float, rounds: int) -> dict[str, list[float]]:
    size = message_size()
    figures: dict[str, list[float]] = {"raw": [], "raw+dir": [], "fracta": []}
    for n in range(rounds):
        for label in figures:
            folder = base / f"{label}-{procs}-{n}"
            folder.mkdir()
            if label == "fracta":
                make_repo(folder, procs)
                figures[label].append(measure(fracta_worker, folder, procs, seconds))
                check_delivery(folder, procs)
            else:
                fsync_dir = label == "raw+dir"

                def work(f: Path, i: int, d: float, fsync_dir: bool = fsync_dir) -> int:
                    return raw_worker(f, i, d, fsync_dir, size)

                figures[label].append(measure(work, folder, procs, seconds))
            shutil.rmtree(folder)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median is shown")
    parser.add_argument("--procs", default="1,8", help="comma-separated process counts")
    parser.add_argument("--dir", default="/tmp", help="where to make the temporary folder (a real disk)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="fracta-bench-mailbox-", dir=args.dir))
    print(f"message file: {message_size()} bytes; {args.rounds} rounds of {args.seconds:g}s; folder {base}")
    print(f"{'procs':>5}  {'workload':<40} {'ops/s':>9} {'us/op':>8} {'vs raw':>7}")
    missed = []
    try:
        for procs in (int(p) for p in args.procs.split(",")):
            figures = run(base, procs, args.seconds, args.rounds)
            raw = statistics.median(figures["raw"])
            rows = [
                ("raw", "raw: write + fsync + rename", figures["raw"]),
                ("raw+dir", "raw + fsync of the folder", figures["raw+dir"]),
                ("fracta", "fracta: mailbox.send + mailbox.read", figures["fracta"]),
            ]
            for key, label, values in rows:
                rate = statistics.median(values)
                per_op = procs / rate * 1e6  # wall time one process spends per operation
                verdict = ""
                if key == "fracta":
                    ok = rate / raw >= TARGET
                    verdict = f"  target >= {TARGET:.0%}: {'met' if ok else 'MISSED'}"
                    if not ok:
                        missed.append(procs)
                print(f"{procs:>5}  {label:<40} {rate:>9.0f} {per_op:>8.0f} {rate / raw:>7.0%}{verdict}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
