"""progress.md: a snapshot of every agent, regenerated atomically after every state change."""

from __future__ import annotations

import time

from . import agents, atomic, clock, names
from .errors import CorruptRecord
from .repo import Repo


def refresh(repo: Repo) -> None:
    """Regenerate progress.md. Concurrent callers coalesce: a regeneration that started after
    our change already covers it, so we skip ours (this keeps heavy message traffic cheap)."""
    if not repo.initialized:
        return
    requested = time.time_ns()

    def covered() -> bool:
        # progress.md's mtime is the time its regeneration started (set before it became visible).
        try:
            return repo.progress_path.stat().st_mtime_ns >= requested
        except FileNotFoundError:
            return False

    # A waiter leaves as soon as a regeneration that covers its change lands, without queueing
    # for the lock only to find the work done.
    with atomic.lock(repo.state / "progress.lock", unless=covered) as held:
        if not held or covered():
            return
        started = time.time_ns()
        # Derived data: atomic but not fsync'd; it is rebuilt from the records at any time.
        atomic.write_text(repo.progress_path, render(repo), durable=False, mtime_ns=started)


def record_action(repo: Repo, action: str) -> None:
    """Remember the chessmaster's last action (shown in progress.md)."""
    repo.chessmaster_dir.mkdir(exist_ok=True)
    atomic.write_json(repo.chessmaster_dir / "last_action.json", {"schema": 1, "at": clock.now(), "action": action})
    refresh(repo)


def last_action(repo: Repo) -> tuple[str, str] | None:
    try:
        data = atomic.read_json(repo.chessmaster_dir / "last_action.json")
    except (FileNotFoundError, CorruptRecord):  # a bad snapshot must never stop progress.md
        return None
    return str(data.get("action", "")), str(data.get("at", ""))


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ") or "-"


def render(repo: Repo) -> str:
    from . import mailbox

    everyone, problems = agents.list_all(repo)
    counts: dict[str, int] = {}
    for a in everyone:
        counts[a.status.value] = counts.get(a.status.value, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"
    lines = [
        "# fracta progress",
        "",
        f"Updated {clock.now()}. Agents: {len(everyone)} ({summary}). "
        f"Chessmaster unread: {mailbox.unread_count(repo, names.CHESSMASTER)}.",
        "",
        "| agent | status | intent | branch | unread | last commit | last activity |",
        "|---|---|---|---|---|---|---|",
    ]
    for a in everyone:
        seen = agents.last_activity(repo, a.name)
        commit = f"{a.last_commit[:10]} {a.last_commit_subject or ''}".strip() if a.last_commit else None
        lines.append(
            f"| {a.name} | {a.status.value} | {_cell(a.intent)} | {_cell(a.branch)} "
            f"| {mailbox.unread_count(repo, a.name)} | {_cell(commit)} "
            f"| {clock.stamp(seen) if seen else '-'} |"
        )
    for problem in problems:
        lines.append(f"| {problem.path.parent.name} | corrupt record | {_cell(str(problem))} | - | - | - | - |")
    action = last_action(repo)
    lines += ["", "## Chessmaster's last action", ""]
    lines.append(f"{action[1]}: {action[0]}" if action else "None yet.")
    return "\n".join(lines) + "\n"
