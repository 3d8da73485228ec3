"""Work that would be lost with an agent's worktree: finding it, and keeping it under a ref.

"Unsaved" means work that exists nowhere else: commits on the agent's branch (or its worktree's
HEAD) that no other local branch, tag or remote-tracking branch contains, and uncommitted
changes (tracked, and untracked files that are not ignored) in its worktree. Ignored files
(build output, caches) are neither counted nor saved. A folder the user named (`--workspace`)
never has unsaved work in this sense: fracta leaves it in place, so nothing in it is lost. A
managed directory workspace (workspaces/directory.py), which `kill` removes, has: commits on no
remote-tracking branch and uncommitted files if it is a git repository, else every file in it;
`save` moves that folder, whole, to <workspaces.root>/.archive/<name>/<UTC time>.

`save` keeps all of it under refs/fracta/archive/<name>/<UTC time> without touching the
worktree or the index the agent uses: the snapshot is built in a temporary index.
"""

from __future__ import annotations

import shlex
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import agents, events, git, workspaces
from .errors import Refused
from .repo import Repo
from .workspaces import directory

ARCHIVE_PREFIX = "refs/fracta/archive/"
_SHOWN_FILES = 10
# Archive commits are machine-made snapshots: a fixed identity, so saving never fails for want of one.
_IDENTITY = {
    "GIT_AUTHOR_NAME": "fracta",
    "GIT_AUTHOR_EMAIL": "fracta@localhost",
    "GIT_COMMITTER_NAME": "fracta",
    "GIT_COMMITTER_EMAIL": "fracta@localhost",
}


@dataclass(frozen=True)
class UnsavedWork:
    """What removing an agent's workspace would lose."""

    unmerged_commits: int
    dirty_files: list[str]
    branch: str | None = None
    folder: bool = False  # a managed directory workspace: commits not pushed, files not committed
    repository: bool = True  # (folder) it is a git repository; if not, every file in it counts

    @property
    def any(self) -> bool:
        return self.unmerged_commits > 0 or bool(self.dirty_files)

    def describe(self) -> str:
        parts = []
        if self.folder and not self.repository and self.dirty_files:
            return f"{len(self.dirty_files)} file(s) in a folder that is no git repository: {self._shown()}"
        if self.folder and self.unmerged_commits:
            parts.append(f"{self.unmerged_commits} commit(s) on no remote-tracking branch (never pushed)")
        elif self.unmerged_commits:
            parts.append(f"{self.unmerged_commits} commit(s) on {self.branch or 'its branch'} found on no other branch")
        if self.dirty_files:
            parts.append(f"{len(self.dirty_files)} uncommitted file(s): {self._shown()}")
        return "; ".join(parts) or "nothing unsaved"

    def _shown(self) -> str:
        more = len(self.dirty_files) - _SHOWN_FILES
        return ", ".join(self.dirty_files[:_SHOWN_FILES]) + (f" and {more} more" if more > 0 else "")

    def __str__(self) -> str:
        return self.describe()


@dataclass(frozen=True)
class SavedWork:
    """Where saved work went, and the commands that bring it back."""

    ref: str
    commit: str
    restore_hint: str
    uncommitted: bool = False  # True when the saved commit holds uncommitted changes on top


def unsaved_work(repo: Repo, agent: agents.Agent) -> UnsavedWork:
    """Commits and uncommitted changes of `agent` that exist nowhere else (see the module doc)."""
    ws = workspaces.from_agent(agent)
    if ws is not None and directory.managed(repo, ws):
        found = directory.pending(ws)
        return UnsavedWork(found.commits, found.files, folder=True, repository=found.repository)
    if ws is None or ws.kind != workspaces.GIT:
        return UnsavedWork(0, [])
    head = _worktree_head(repo, ws)
    tip = _branch_tip(repo, ws)
    commits = _count_unique(repo, ws.branch, [c for c in (tip, head) if c])
    dirty = workspaces.status_paths(ws.path, untracked=True) if head is not None else []
    return UnsavedWork(commits, dirty, ws.branch)


def save(repo: Repo, agent: agents.Agent) -> SavedWork:
    """Keep the branch tip and the worktree's uncommitted changes under refs/fracta/archive/<name>/<time>."""
    ws = workspaces.from_agent(agent)
    if ws is not None and directory.managed(repo, ws):
        return _set_aside(repo, agent.name, ws)
    if ws is None or ws.kind != workspaces.GIT:
        raise Refused(
            f"agent {agent.name!r} has no git worktree, so there is nothing for fracta to save",
            "a directory workspace stays where it is when the agent is removed",
        )
    head = _worktree_head(repo, ws)
    tip = _branch_tip(repo, ws)
    parents = [c for c in (head, tip) if c]
    if head and tip and (tip == head or git.ok(repo.root, "merge-base", "--is-ancestor", tip, head)):
        parents = [head]  # the branch tip is already in the worktree's history
    if not parents:
        raise Refused(
            f"agent {agent.name!r} has neither a branch nor a worktree left; there is nothing to save",
            "nothing will be lost by removing it",
        )
    first_tree = git.out(repo.root, "rev-parse", f"{parents[0]}^{{tree}}")
    tree = _snapshot_tree(ws.path) if head is not None else first_tree
    uncommitted = tree != first_tree
    if uncommitted or len(parents) > 1:
        message = (
            f"fracta: saved work of {agent.name}\n\nbranch {ws.branch} at {tip or '(gone)'}\n"
            f"worktree HEAD {head or '(gone)'}\nuncommitted changes included: {'yes' if uncommitted else 'no'}\n"
        )
        args = [arg for p in parents for arg in ("-p", p)]
        target = git.out(repo.root, "commit-tree", "--no-gpg-sign", tree, *args, "-m", message, env=_IDENTITY)
    else:
        target = parents[0]
    ref = _create_ref(repo, agent.name, target)
    events.record(repo, "work.saved", agent=agent.name, ref=ref, commit=target, uncommitted=uncommitted)
    hint = _restore_hint(repo, agent.name, ref, snapshot=target != parents[0], two_parents=len(parents) > 1)
    return SavedWork(ref=ref, commit=target, restore_hint=hint, uncommitted=uncommitted)


def _set_aside(repo: Repo, name: str, ws: workspaces.Workspace) -> SavedWork:
    """A managed folder's work: the whole folder moved aside, its git history (if any) with it."""
    commit = directory.head(ws) or ""
    target = directory.set_aside(repo, name, ws)
    events.record(repo, "work.saved", agent=name, ref=str(target), commit=commit or None, uncommitted=True)
    hint = (
        f"the folder of {name} was moved, whole, to {target}; to restore it, run:\n"
        f"  mv {shlex.quote(str(target))} {shlex.quote(str(ws.path))}"
    )
    return SavedWork(ref=str(target), commit=commit, restore_hint=hint, uncommitted=True)


def _worktree_head(repo: Repo, ws: workspaces.Workspace) -> str | None:
    """The commit checked out in the worktree, or None when git no longer has that worktree.

    A folder git does not know as a worktree is not deleted by workspaces.remove, so nothing in
    it can be lost and it is not looked at.
    """
    if not (ws.path / ".git").exists() or ws.path.resolve() not in workspaces.worktree_paths(repo):
        return None
    return git.out(ws.path, "rev-parse", "--verify", "HEAD")


def _branch_tip(repo: Repo, ws: workspaces.Workspace) -> str | None:
    if ws.branch is None:
        return None
    proc = git.run(repo.root, "rev-parse", "--verify", "--quiet", f"refs/heads/{ws.branch}", check=False)
    return proc.stdout.strip() or None


def _count_unique(repo: Repo, branch: str | None, tips: list[str]) -> int:
    """Commits reachable from `tips` but from no branch (other than `branch`), tag or remote branch."""
    if not tips:
        return 0
    exclude = [f"--exclude={branch}"] if branch else []
    return int(git.out(repo.root, "rev-list", "--count", *tips, "--not", *exclude, "--branches", "--tags", "--remotes"))


def _snapshot_tree(path: Path) -> str:
    """The worktree as a tree (tracked and untracked, not ignored), built in a temporary index."""
    index = Path(git.out(path, "rev-parse", "--path-format=absolute", "--git-path", "index"))
    with tempfile.TemporaryDirectory(prefix="fracta-archive-") as tmp:
        tmp_index = Path(tmp) / "index"
        env = {"GIT_INDEX_FILE": str(tmp_index)}
        # Start from a copy of the agent's index: it keeps staged files that are ignored, and its
        # stat data spares re-hashing unchanged files. The original is never written.
        try:
            shutil.copyfile(index, tmp_index)
        except FileNotFoundError:
            git.run(path, "read-tree", "HEAD", env=env)
        git.run(path, "add", "--all", "--", ".", env=env)
        return git.out(path, "write-tree", env=env)


def _create_ref(repo: Repo, name: str, commit: str) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for n in range(100):
        ref = f"{ARCHIVE_PREFIX}{name}/{stamp}" + (f"-{n}" if n else "")
        # An empty old value means "create only": two saves in one second never overwrite each other.
        if git.ok(repo.root, "update-ref", "-m", f"fracta: save work of {name}", ref, commit, ""):
            return ref
    raise Refused(f"could not create an archive ref for {name}", f"see git for-each-ref {ARCHIVE_PREFIX}{name}/")


def _restore_hint(repo: Repo, name: str, ref: str, *, snapshot: bool, two_parents: bool) -> str:
    branch = f"{name}-restored"
    lines = [f"cd {shlex.quote(str(repo.root))}", f"git branch {branch} {ref}"]
    if snapshot:
        folder = shlex.quote(str(repo.root.parent / f"{repo.root.name}-{branch}"))
        lines += [f"git worktree add {folder} {branch}", f"git -C {folder} reset -q HEAD~1"]
    text = f"the work of {name} is saved under {ref}; to restore it, run:\n" + "\n".join(f"  {x}" for x in lines)
    if snapshot:
        text += "\n(the last command turns the saved uncommitted changes back into uncommitted files)"
    if two_parents:
        text += f"\n(the branch's own tip, apart from the worktree's HEAD, is {ref}^2)"
    return text
