"""progress.md: a snapshot of every agent, regenerated atomically after every state change."""

from __future__ import annotations

import threading
import time
from typing import Any

from . import agents, alerts, atomic, clock, names
from .errors import FractaError, LockTimeout
from .repo import Repo


def refresh(repo: Repo) -> None:
    """Regenerate progress.md after a state change (or hand it to the process's coalescing sink)."""
    if repo.progress_sink is not None:
        repo.progress_sink.request(repo)
        return
    regenerate(repo)


# How long a long-lived process lets changes gather before regenerating progress.md. On files a
# regeneration reads a few local files; on PostgreSQL it is about ten queries, which at one per
# 20 ms slot cost more than the messages themselves (bench/store_postgres.py, messages row).
MIRROR_DELAY = {"files": 0.02, "postgres": 0.2}


def coalescer_for(repo: Repo) -> Coalescer:
    """The coalescing sink a long-lived process (control plane, gateway) gives its Repo."""
    from .store import backend_of

    return Coalescer(delay=MIRROR_DELAY.get(backend_of(repo), MIRROR_DELAY["files"]))


def regenerate(repo: Repo, requested: int | None = None, *, wait: bool = True) -> bool:
    """Regenerate progress.md now. Concurrent callers coalesce: a regeneration that started after
    our change already covers it, so we skip ours (this keeps heavy message traffic cheap).

    Without `wait`, a regeneration under way in another process is not waited for: returns False
    if it has not covered our change yet (call again shortly; it most likely will have).
    """
    if not repo.initialized:
        return True
    if requested is None:
        requested = time.time_ns()  # when the change we must cover happened (at the latest)

    def covered() -> bool:
        # progress.md's mtime is the time its regeneration started (set before it became visible).
        try:
            return repo.progress_path.stat().st_mtime_ns >= requested
        except FileNotFoundError:
            return False

    # A waiter leaves as soon as a regeneration that covers its change lands, without queueing
    # for the lock only to find the work done.
    try:
        timeout = atomic.DEFAULT_LOCK_TIMEOUT if wait else 0
        with atomic.lock(repo.state / "progress.lock", timeout, unless=covered) as held:
            if not held or covered():
                return True
            started = time.time_ns()
            # Derived data: atomic but not fsync'd; it is rebuilt from the records at any time.
            atomic.write_text(repo.progress_path, render(repo), durable=False, mtime_ns=started)
            return True
    except LockTimeout:
        if wait:
            raise
        return covered()


BUSY_RETRY = 0.002  # seconds: a regeneration takes well under a millisecond for a few dozen agents


class Coalescer:
    """Regenerates progress.md from a background thread, once per `delay`-long slot of the clock.

    For long-lived processes that change state at a high rate (the control plane and gateway
    serving many agents): every change is still followed, within `delay`, by a regeneration
    that covers it, instead of one regeneration per change. The slots are aligned on the wall
    clock, so processes that change state at once regenerate at the same instants, and the
    first to take the lock covers the others' changes too (they see its newer progress.md and
    skip theirs): a machine-wide rate of one regeneration per slot, however many processes
    write. `flush` regenerates at once.
    """

    def __init__(self, delay: float = 0.02) -> None:
        self.delay = delay
        self._slot = max(1, int(delay * 1e9))
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._pending: Repo | None = None
        self._oldest = 0  # time of the oldest change not yet covered (0: none)
        self._newest = 0  # time of the latest change not yet covered
        self._thread: threading.Thread | None = None

    def request(self, repo: Repo) -> None:
        with self._lock:
            self._newest = time.time_ns()
            self._pending = repo
            if self._oldest:
                return  # the thread is already awake for an earlier change (_wake is set until covered)
            self._oldest = self._newest
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)
                self._thread.start()
            self._wake.set()

    def flush(self) -> None:
        """Cover every change so far, now."""
        self._cover(until=None)

    def _cover(self, until: int | None, wait: bool = True) -> bool:
        """Regenerate (or see another process's regeneration) covering the changes up to `until`.

        False when, not waiting, another process was regenerating and has not covered them yet.
        """
        with self._lock:
            repo, newest = self._pending, self._newest
            if repo is None:
                self._wake.clear()
                return True
        requested = newest if until is None or newest <= until else until
        try:
            # A regeneration by any process that started after `requested` covers these changes.
            done = regenerate(repo, requested=requested, wait=wait)
        except BaseException:
            self._covered(requested, newest)  # given up on: the next change retries, not every slot
            raise
        if done:
            self._covered(requested, newest)
        return done

    def _covered(self, requested: int, newest: int) -> None:
        with self._lock:
            if requested == newest == self._newest:  # nothing changed meanwhile: all covered
                self._pending, self._oldest = None, 0
                self._wake.clear()
            elif requested < self._newest:  # later changes are left for their own slot
                self._oldest = requested + 1

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            with self._lock:
                oldest = self._oldest
                if not oldest:  # woken after a flush covered everything
                    self._wake.clear()
                    continue
            end = (oldest // self._slot + 1) * self._slot  # the end of the oldest change's slot
            time.sleep(max(0.0, (end - time.time_ns()) / 1e9))
            try:
                if not self._cover(until=end, wait=False):
                    # Another process is regenerating, most likely after our changes: rather than
                    # poll its lock, look again once it has had the time to finish.
                    time.sleep(BUSY_RETRY)
            except (FractaError, OSError):
                continue  # a corrupt record, a full disk: the next change retries


def record_action(repo: Repo, action: str) -> None:
    """Remember the chessmaster's last action (shown in progress.md)."""
    repo.store.record_action(action, clock.now())
    refresh(repo)


def last_action(repo: Repo) -> tuple[str, str] | None:
    return repo.store.last_action()


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ") or "-"


LOUD = ("needs-you", "stalled", "failed")  # the states whose reason is shown in the table


def render(repo: Repo) -> str:
    # Regenerated after every state change: one look at the chessmaster's mail and last action
    # for every agent's state (states.gather), a stat of each agent's output for the rest.
    from . import mailbox, results, states, usage

    everyone, problems = agents.list_all(repo)
    facts = states.gather(repo)
    views: list[dict[str, Any]] = []
    for a in everyone:
        now = states.of(repo, a, facts)
        views.append({"state": now.state, "reason": now.reason, "status": a.status, "usage": a.usage or {}})
    totals = results.totals(views)
    lines = [
        "# fracta progress",
        "",
        f"Updated {clock.now()}. {results.fleet_line(totals)}. "
        f"Chessmaster unread: {mailbox.unread_count(repo, names.CHESSMASTER)}.",
        "",
        "| agent | status | intent | branch | unread | state | tokens | cost | last commit | last activity |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for a, view in zip(everyone, views, strict=True):
        seen = agents.last_activity(repo, a.name)
        commit = f"{a.last_commit[:10]} {a.last_commit_subject or ''}".strip() if a.last_commit else None
        state = view["state"] + (f" ({view['reason'][:100]})" if view["state"] in LOUD else "")
        used = usage.Usage.from_dict(a.usage).to_dict()
        lines.append(
            f"| {a.name} | {a.status.value} | {_cell(a.intent)} | {_cell(a.branch)} "
            f"| {mailbox.unread_count(repo, a.name)} | {_cell(state)} | {usage.tokens_text(used)} "
            f"| {usage.cost_text(used)} | {_cell(commit)} | {clock.stamp(seen) if seen else '-'} |"
        )
    for problem in problems:
        lines.append(f"| {problem.path.parent.name} | corrupt record | {_cell(str(problem))} |" + " - |" * 7)
    raised = alerts.lines(repo)  # commits outside an agent's branch (commits.py)
    if raised:
        lines += ["", "## Alerts", "", *(f"- {line}" for line in raised)]
    action = last_action(repo)
    lines += ["", "## Chessmaster's last action", ""]
    lines.append(f"{action[1]}: {action[0]}" if action else "None yet.")
    return "\n".join(lines) + "\n"
