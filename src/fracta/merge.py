"""`fracta merge`: bring an agent's branch into the chessmaster's current branch, or change nothing.

Every check runs before the repository is touched, and conflicts are previewed with
`git merge-tree --write-tree`, so a refused or conflicting merge leaves HEAD, the index and the
main worktree exactly as they were. The merge is non-destructive: the agent and its branch stay.

What counts as a dirty main worktree: any change to tracked files (staged or not), and untracked
files the merge would overwrite. Other untracked files (such as fracta.yaml before it is
committed) do not block a merge; git leaves them alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import agents, atomic, events, git, messaging, names, progress, workspaces
from .errors import GitError, MergeConflict, Refused
from .repo import Repo

_IN_PROGRESS = {
    "MERGE_HEAD": "a merge",
    "CHERRY_PICK_HEAD": "a cherry-pick",
    "REVERT_HEAD": "a revert",
    "rebase-merge": "a rebase",
    "rebase-apply": "a rebase or git am",
}


@dataclass(frozen=True)
class MergeResult:
    agent: str
    branch: str  # the agent's branch, feature/<name>
    into: str  # the chessmaster's branch it was merged into
    sha: str  # the new HEAD of `into`
    fast_forward: bool
    already_up_to_date: bool
    notified: list[str] = field(default_factory=list)
    previous: str | None = None  # HEAD of `into` before the merge


@dataclass(frozen=True)
class MergePreview:
    """What `merge` would do now, found by the same checks, changing nothing."""

    agent: str
    branch: str | None
    into: str | None
    would: str  # "merge", "fast-forward", "nothing" (already up to date), "conflict" or "refused"
    conflicts: list[str] = field(default_factory=list)  # with "conflict": the files that would conflict
    refused: str | None = None  # with "refused": why, and what to do
    hint: str = ""

    def to_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def preview(repo: Repo, name: str) -> MergePreview:
    """What merging feature/<name> into the main worktree's branch would do: every check and the
    conflict preview (`git merge-tree --write-tree`) of `merge`, without merging."""
    branch: str | None = None
    into: str | None = None
    try:
        branch = _branch_of(repo, name)
        into, before, tip = _check_main(repo, name, branch)
        if tip == before or git.ok(repo.root, "merge-base", "--is-ancestor", tip, before):
            return MergePreview(name, branch, into, "nothing")
        _preview(repo, branch, before, tip)
    except MergeConflict as exc:
        return MergePreview(name, branch, into, "conflict", exc.files, hint=exc.hint)
    except Refused as exc:
        return MergePreview(name, branch, into, "refused", refused=exc.message, hint=exc.hint)
    forward = git.ok(repo.root, "merge-base", "--is-ancestor", before, tip)
    return MergePreview(name, branch, into, "fast-forward" if forward else "merge")


def _branch_of(repo: Repo, name: str) -> str:
    """The agent's git branch, or Refused: merge needs a git worktree."""
    agent = agents.load(repo, name)
    ws = workspaces.from_agent(agent)
    if ws is None or ws.kind != workspaces.GIT or ws.branch is None:
        where = f" (it works in {agent.workspace})" if agent.workspace else ""
        raise Refused(
            f"merge is only available for git worktrees; agent {name!r} has none{where}",
            "commit and push from the agent's workspace yourself, or run the agent in local-process mode",
        )
    return ws.branch


def merge(repo: Repo, name: str, *, notify: bool = False, cwd: Path) -> MergeResult:
    """Merge feature/<name> into the main worktree's current branch; with `notify`, tell the other live agents."""
    branch = _branch_of(repo, name)
    _refuse_from_linked_worktree(repo, cwd)
    with atomic.lock(repo.state / "merge.lock"):  # one merge at a time in this repo
        into, before, tip = _check_main(repo, name, branch)
        already = tip == before or git.ok(repo.root, "merge-base", "--is-ancestor", tip, before)
        if not already:
            _preview(repo, branch, before, tip)
            _run_merge(repo, name, branch, into, before)
        sha = git.head(repo.root)
    short = sha[:10]
    fast_forward = not already and sha == tip
    events.record(repo, "agent.merged", agent=name, into=into, sha=sha, fast_forward=fast_forward, changed=not already)
    progress.record_action(repo, f"merged {name} into {into} at {short}" + (" (already up to date)" if already else ""))
    notified = _notify(repo, name, into, short) if notify else []
    return MergeResult(name, branch, into, sha, fast_forward, already, notified, before)


def _refuse_from_linked_worktree(repo: Repo, cwd: Path) -> None:
    """Merging back happens only in the main worktree: refuse when `cwd` is inside another one."""
    here = cwd.resolve()
    found = workspaces.worktree_paths(repo)
    containing = [w for w in found if w == here or w in here.parents]
    deepest = max(containing, key=lambda w: len(w.parts), default=None)
    inside_state = repo.worktrees_dir.resolve() in (here, *here.parents)
    if (deepest is not None and found and deepest != found[0]) or inside_state:
        raise Refused(
            f"merge must run in the main worktree ({repo.root}), not inside a linked worktree ({deepest or here})",
            f"run it from the main worktree: cd {repo.root} && fracta merge NAME; to take the main branch's "
            "changes into this worktree instead, run git merge <that branch> here",
        )


def _check_main(repo: Repo, name: str, branch: str) -> tuple[str, str, str]:
    """(branch checked out in the main worktree, its HEAD, the agent's tip) after every refusal check."""
    into = git.current_branch(repo.root)
    if into is None:
        raise Refused(
            "the main worktree is on a detached HEAD: there is no branch to merge into",
            "check out the branch to merge into first, e.g. git switch main",
        )
    git_dir = Path(git.out(repo.root, "rev-parse", "--path-format=absolute", "--git-dir"))
    for marker, what in _IN_PROGRESS.items():
        if (git_dir / marker).exists():
            raise Refused(
                f"the main worktree is in the middle of {what}",
                "finish it or abort it (e.g. git merge --abort, git rebase --abort) and retry",
            )
    tip = workspaces.resolve_commit(repo, f"refs/heads/{branch}")
    if tip is None:
        raise Refused(f"agent {name!r} has no branch {branch} any more", "there is nothing to merge")
    dirty = workspaces.status_paths(repo.root, untracked=False)
    if dirty:
        listing = "\n".join(f"  {f}" for f in dirty)
        raise Refused(
            f"the main worktree has uncommitted changes; nothing was merged:\n{listing}",
            "commit or stash them first, then retry",
        )
    return into, git.head(repo.root), tip


def _preview(repo: Repo, branch: str, before: str, tip: str) -> None:
    """Raise MergeConflict if the merge would conflict, Refused if it would overwrite untracked files."""
    proc = git.run(
        repo.root, "merge-tree", "--write-tree", "--name-only", "--no-messages", "-z", before, tip, check=False
    )
    if proc.returncode not in (0, 1):
        raise GitError(["git", "merge-tree", "--write-tree", before, tip], proc.returncode, proc.stdout, proc.stderr)
    tree, *rest = proc.stdout.split("\0")
    if proc.returncode == 1:
        raise MergeConflict(branch, sorted({f for f in rest if f}))
    changed = git.run(repo.root, "diff-tree", "-r", "--name-only", "-z", before, tree).stdout.split("\0")
    untracked = set(workspaces.status_paths(repo.root, untracked=True))
    clobbered = sorted(untracked.intersection(changed))
    if clobbered:
        listing = "\n".join(f"  {f}" for f in clobbered)
        raise Refused(
            f"merging {branch} would overwrite untracked files in the main worktree; nothing was merged:\n{listing}",
            "move them aside, or commit them, then retry",
        )


def _run_merge(repo: Repo, name: str, branch: str, into: str, before: str) -> None:
    """`git merge`; if it fails anyway (a hook, a race), abort it so the repo is as it was."""
    message = f"fracta: merge {name} ({branch}) into {into}"
    args = ["merge", "--no-edit", "--quiet", "-m", message, f"refs/heads/{branch}"]
    proc = git.run(repo.root, *args, check=False)
    if proc.returncode == 0:
        return
    git_dir = Path(git.out(repo.root, "rev-parse", "--path-format=absolute", "--git-dir"))
    conflicted: list[str] = []
    if (git_dir / "MERGE_HEAD").exists():
        conflicted = [
            f for f in git.run(repo.root, "diff", "--name-only", "--diff-filter=U", "-z").stdout.split("\0") if f
        ]
        git.run(repo.root, "merge", "--abort", hint="the merge could not be aborted; run git merge --abort yourself")
    if conflicted:
        raise MergeConflict(branch, conflicted)
    moved = git.head(repo.root) != before
    raise GitError(
        ["git", *args],
        proc.returncode,
        proc.stdout,
        proc.stderr,
        hint="HEAD moved although git reported a failure; check git log and git status"
        if moved
        else "the merge was aborted and the repository is as it was; fix the cause above and retry",
    )


def _notify(repo: Repo, name: str, into: str, short: str) -> list[str]:
    """Send the dependent-work message to every other live agent; returns who got it."""
    everyone, _ = agents.list_all(repo)
    told: list[str] = []
    body = f"{into} updated to {short}; run git merge {into}"
    for other in everyone:
        if other.name != name and other.live:
            # An idle agent is woken to act on it (the seed's dependent-work flow).
            messaging.send(repo, names.CHESSMASTER, other.name, body, subject=f"merged {name}")
            told.append(other.name)
    return told
