"""Building blocks for the store tests: stores of either backend over a temporary folder, and
records made the way the core makes them."""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

from fracta import clock
from fracta.records import Agent, Message, Mission, Status
from fracta.repo import Repo
from fracta.store.base import Store

_seq = itertools.count()


def make_repo(root: Path, config: str | None = None) -> Repo:
    """A repo's state folder as `fracta init` leaves it: agents/, and the chessmaster's token."""
    repo = Repo(root, git_common_dir=None)
    if config is not None:
        root.mkdir(parents=True)
        repo.config_path.write_text(config)
    repo.agents_dir.mkdir(parents=True)
    repo.missions_dir.mkdir()
    (repo.chessmaster_dir / "inbox").mkdir(parents=True)
    for sub in ("tmp", "new", "cur"):
        (repo.chessmaster_dir / "inbox" / sub).mkdir()
    repo.token_path.write_text("chessmaster-token-" + os.urandom(8).hex() + "\n")
    repo.token_path.chmod(0o600)
    return repo


def open_postgres(repo: Repo, url: str, retry: float = 5.0) -> Store:
    from fracta.store.postgres import open_store

    return open_store(repo, url, pool_size=4, lease=30.0, retry=retry)


def agent(name: str, **fields: object) -> Agent:
    stamp = clock.now()
    return Agent(name=name, runtime="command", status=Status.QUEUED, created_at=stamp, updated_at=stamp, **fields)  # type: ignore[arg-type]


def message(to: str, body: str = "hello", sender: str = "chessmaster", key: str | None = None) -> Message:
    """A message as the core makes it: its id starts with the send time in ns and sorts by it."""
    msg_id = f"{time.time_ns():019d}.{os.getpid()}.{next(_seq)}.{os.urandom(3).hex()}"
    return Message(msg_id, sender, to, clock.now(), body, dedup_key=key)


def mission(name: str, prompt: str | None = "go") -> Mission:
    return Mission(name=name, runtime="command", prompt=prompt, args=["--x"], queued_ns=time.time_ns())


def holder() -> str:
    return os.urandom(8).hex()
