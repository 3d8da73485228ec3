"""Shared by the spawn benchmarks: wait until the control plane's background work is done.

After a spawn the control plane makes, in the background, a new warm runner (a second after a
launch) and a new spare worktree (once spawns have been quiet for a second). A measurement of
either side, fracta's or the baseline's, starts only once both are ready, so that it never
shares the machine with that work.
"""

from __future__ import annotations

import time
from pathlib import Path

_last_spawn = [0.0]  # time.monotonic() of the last fracta spawn


def spawned() -> None:
    """Note that fracta just spawned an agent."""
    _last_spawn[0] = time.monotonic()


def settle(root: Path, timeout: float = 120.0) -> None:
    """Wait for the warm runner's refill and for every spare worktree the repo should have."""
    from fracta import repo, spares

    time.sleep(max(0.0, _last_spawn[0] + 2.0 - time.monotonic()))
    r = repo.find(root, env={})
    deadline = time.monotonic() + timeout
    while len(spares.ready(r)) < spares.wanted(r):
        if time.monotonic() > deadline:
            raise SystemExit(f"the control plane made no spare worktree in {timeout:.0f} s")
        time.sleep(0.01)
    time.sleep(0.2)  # let the disk settle after the last write
