"""A child process for the concurrency tests: sends, reads, churns or polls through the fracta library.

Run as `python worker.py ROLE ...` from inside the test repo. A role that writes touches `--ready`
and waits for the `--go` file (a start barrier, so the processes really overlap); every role
writes what it saw to `--out` as JSON when it ends. No role asserts anything: the test does.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import random
import time
from pathlib import Path
from typing import Any

from fracta import mailbox, progress, project
from fracta import repo as repo_mod
from fracta.store.files import mailbox as maildir

PROGRESS_HEAD = "# fracta progress\n"
PROGRESS_TAIL = "\n## Chessmaster's last action\n\n"


def make_body(sender: str, index: int, rng: random.Random, size: int) -> str:
    """A body that proves itself whole: a header line with the sha256 of the payload after it."""
    unit = f"{sender} says {index}\n\n"  # blank lines in the body must survive too
    payload = (unit * (size // len(unit) + 1))[:size] + f"{rng.getrandbits(64):016x}"
    return f"{sender} {index} {hashlib.sha256(payload.encode()).hexdigest()}\n{payload}"


def check_body(body: str) -> tuple[str, int] | None:
    """(sender, index) if the body is whole, None if it is torn or altered."""
    head, sep, payload = body.partition("\n")
    parts = head.split(" ")
    if not sep or len(parts) != 3:
        return None
    sender, index, digest = parts
    if hashlib.sha256(payload.encode()).hexdigest() != digest or not index.isdigit():
        return None
    return sender, int(index)


def progress_problem(text: str, agent_names: list[str]) -> str | None:
    """Why a read of progress.md is not a whole file, or None when it is."""
    if not text.startswith(PROGRESS_HEAD):
        return "does not start with the title"
    tail = text.rpartition(PROGRESS_TAIL)[2]
    if PROGRESS_TAIL not in text or not tail.endswith("\n") or tail.count("\n") != 1:
        return "does not end with the last-action section and a newline"
    rows = {line.split(" | ")[0].removeprefix("| ") for line in text.splitlines() if line.startswith("| ")}
    missing = [n for n in agent_names if n not in rows]
    return f"missing rows for {missing}" if missing else None


def wait_for(path: Path) -> None:
    while not path.exists():
        time.sleep(0.001)


def barrier(args: argparse.Namespace) -> None:
    """Say we are ready, then wait for the go: the test starts everyone at once."""
    Path(args.ready).touch()
    wait_for(Path(args.go))


def emit(out: Path, data: dict[str, Any]) -> None:
    out.write_text(json.dumps(data))


def role_send(repo: repo_mod.Repo, args: argparse.Namespace) -> None:
    """Send `count` messages (0: forever, until killed); halfway, wait for the `gate` file."""
    rng = random.Random(args.seed)
    barrier(args)
    index = 0
    while args.count == 0 or index < args.count:
        if args.gate and args.count and index == args.count // 2:
            wait_for(Path(args.gate))
        body = make_body(args.sender, index, rng, rng.randint(args.min_size, args.max_size))
        mailbox.send(repo, args.sender, args.to, body)
        index += 1
    if args.out:
        emit(Path(args.out), {"sent": index})


def role_read(repo: repo_mod.Repo, args: argparse.Namespace) -> None:
    """Read the inbox until the `stop` file exists, then once more; record every message claimed."""
    stop = Path(args.stop)
    got: list[dict[str, Any]] = []
    problems: list[str] = []
    barrier(args)
    receipt: str | None = None  # each reader acknowledges what it got with its next read, as a queue's consumer
    for batch in itertools.count():
        stopping = stop.exists()
        box = mailbox.read(repo, args.to, ack=receipt)
        receipt = box.receipt
        got += [{"batch": batch, "id": m.id, "from": m.sender, "to": m.to, "body": m.body} for m in box.messages]
        problems += [p.message for p in box.problems]
        if box.messages and args.gate:
            Path(args.gate).touch()  # releases the senders' second half: reading overlaps sending
        if stopping:
            break
        if not box.messages:
            time.sleep(0.002)  # nothing to claim: leave the CPU to the senders
    mailbox.acknowledge(repo, args.to, receipt)
    emit(Path(args.out), {"messages": got, "problems": problems})


def role_churn(repo: repo_mod.Repo, args: argparse.Namespace) -> None:
    """Change intents (of varying length, so records change size) and send messages, `count` times."""
    rng = random.Random(args.seed)
    targets = args.agents.split(",")
    barrier(args)
    for index in range(args.count):
        who = targets[index % len(targets)]
        project.set_intent(repo, who, f"{args.sender} step {index} " + "x" * rng.randint(0, 160))
        mailbox.send(repo, args.sender, targets[(index + 1) % len(targets)], make_body(args.sender, index, rng, 200))
        if index % 10 == 0:
            box = mailbox.read(repo, args.sender)
            mailbox.acknowledge(repo, args.sender, box.receipt)
            progress.record_action(repo, f"{args.sender} checked in at step {index}")
    emit(Path(args.out), {"done": args.count})


def role_poll(repo: repo_mod.Repo, args: argparse.Namespace) -> None:
    """Read progress.md and every agent.json until `stop` exists, then once more; record bad reads.

    Needs no barrier: it says it is ready only after a first full pass, so its reads start before
    any writer does and (with the last pass) end after every writer finished.
    """
    stop = Path(args.stop)
    targets = args.agents.split(",")
    reads = 0
    bad: list[str] = []
    seen_progress: set[str] = set()
    seen_records: set[str] = set()
    while True:
        stopping = stop.exists()
        text = repo.progress_path.read_text()
        reads += 1
        seen_progress.add(text)
        problem = progress_problem(text, targets)
        if problem:
            bad.append(f"progress.md {problem}: {text[-200:]!r}")
        for name in targets:
            raw = (repo.agent_dir(name) / "agent.json").read_text()
            reads += 1
            seen_records.add(raw)
            try:
                data = json.loads(raw)
            except json.JSONDecodeError as exc:
                bad.append(f"{name}/agent.json not JSON ({exc}): {raw[-200:]!r}")
                continue
            if not isinstance(data, dict) or "schema" not in data:
                bad.append(f"{name}/agent.json has no schema key: {raw[-200:]!r}")
        if reads == 1 + len(targets):
            Path(args.ready).touch()
        if stopping:
            break
    emit(
        Path(args.out),
        {
            "reads": reads,
            "bad": bad[:20],
            "distinct_progress": len(seen_progress),
            "distinct_records": len(seen_records),
        },
    )


ROLES = {"send": role_send, "read": role_read, "churn": role_churn, "poll": role_poll}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=sorted(ROLES))
    parser.add_argument("--go", default="", help="start barrier: wait until this file exists")
    parser.add_argument("--out", default="")
    parser.add_argument("--sender", default="chessmaster")
    parser.add_argument("--to", default="")
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--min-size", type=int, default=40)
    parser.add_argument("--max-size", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gate", default="")
    parser.add_argument("--stop", default="")
    parser.add_argument("--ready", default="", help="touched once this process is waiting at the barrier")
    parser.add_argument("--agents", default="")
    parser.add_argument("--orphan-age", type=float, default=None, help="maildir.ORPHAN_AGE here")
    args = parser.parse_args()
    if args.orphan_age is not None:
        maildir.ORPHAN_AGE = args.orphan_age
    repo = repo_mod.find(Path.cwd(), env={}).require_initialized()
    ROLES[args.role](repo, args)


if __name__ == "__main__":
    main()
