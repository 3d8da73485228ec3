"""Where an agent's branch stands against the integration branch (the main worktree's current
branch, the one `fracta merge` merges into): commits ahead and behind, merged or not, its last
commit, the files it changed and its diff, and what is still uncommitted in its worktree.

Read-only: git is asked with --no-optional-locks where it could otherwise refresh an index.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import agents, git, workspaces
from .repo import Repo

DIFF_LIMIT = 200_000  # characters of diff returned at most (the files list is always whole)
UNCOMMITTED_LIMIT = 200  # paths listed at most


@dataclass(frozen=True)
class Commit:
    sha: str
    subject: str
    author: str
    at: str  # ISO 8601, as git prints it (%aI)


@dataclass(frozen=True)
class FileChange:
    path: str
    added: int | None  # None for a binary file
    removed: int | None


@dataclass(frozen=True)
class BranchStatus:
    agent: str
    branch: str | None  # None: the agent has no git branch (a directory workspace, a joined agent)
    into: str | None  # the main worktree's branch; None on a detached HEAD (compared with HEAD then)
    ahead: int = 0  # commits on the branch that `into` has not
    behind: int = 0  # commits on `into` that the branch has not
    merged: bool = False  # `into` contains the branch's tip (nothing left to merge)
    last_commit: Commit | None = None
    files: list[FileChange] = field(default_factory=list)
    diff: str = ""  # `git diff into...branch`: the branch's own changes since they parted
    truncated: bool = False  # the diff was cut at DIFF_LIMIT characters
    uncommitted: list[str] = field(default_factory=list)  # changed or untracked files in its worktree

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def status(repo: Repo, name: str, diff_limit: int = DIFF_LIMIT) -> BranchStatus:
    """The agent's branch against the integration branch (AgentNotFound if there is no such agent)."""
    agent = agents.load(repo, name)
    ws = workspaces.from_agent(agent)
    if ws is None or ws.kind != workspaces.GIT or ws.branch is None:
        return BranchStatus(name, None, git.current_branch(repo.root))
    into = git.current_branch(repo.root)
    tip = workspaces.resolve_commit(repo, f"refs/heads/{ws.branch}")
    uncommitted = _uncommitted(ws.path)
    if tip is None:  # the branch is gone (deleted by hand): only the worktree is left to tell about
        return BranchStatus(name, ws.branch, into, uncommitted=uncommitted)
    head = git.head(repo.root)
    counts = git.out(repo.root, "rev-list", "--left-right", "--count", f"{head}...{tip}")
    behind, ahead = (int(n) for n in counts.split())
    merged = tip == head or git.ok(repo.root, "merge-base", "--is-ancestor", tip, head)
    diff = git.run(repo.root, "diff", "--no-color", "--no-ext-diff", f"{head}...{tip}").stdout
    return BranchStatus(
        agent=name,
        branch=ws.branch,
        into=into,
        ahead=ahead,
        behind=behind,
        merged=merged,
        last_commit=_commit(repo.root, tip),
        files=_files(repo.root, head, tip),
        diff=diff[:diff_limit],
        truncated=len(diff) > diff_limit,
        uncommitted=uncommitted,
    )


def _commit(root: Path, sha: str) -> Commit:
    sha, subject, author, at = git.out(root, "show", "-s", "--format=%H%x00%s%x00%an%x00%aI", sha).split("\0")
    return Commit(sha, subject, author, at)


def _files(root: Path, head: str, tip: str) -> list[FileChange]:
    raw = git.run(root, "diff", "--numstat", "-z", "--no-renames", f"{head}...{tip}").stdout
    found: list[FileChange] = []
    for entry in raw.split("\0"):
        parts = entry.split("\t", 2)
        if len(parts) == 3:
            added, removed, path = parts
            found.append(FileChange(path, _count(added), _count(removed)))
    return found


def _count(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _uncommitted(path: Path) -> list[str]:
    if not path.is_dir():
        return []
    return workspaces.status_paths(path, untracked=True)[:UNCOMMITTED_LIMIT]
