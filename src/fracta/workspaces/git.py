"""GitWorkspace: a worktree at .fracta/worktrees/<name> on branch feature/<name>, sharing the
main repository's object store; the only kind `fracta merge` works with."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import atomic, git, names, spares
from ..errors import AgentExists, GitError, InvalidInput, NotARepository, Refused
from ..repo import Repo
from .base import BRANCH_PREFIX, GIT, Workspace, branch_for


def worktree_path(repo: Repo, name: str) -> Path:
    return repo.worktrees_dir / name


def resolve_commit(repo: Repo, ref: str) -> str | None:
    """The commit `ref` names, or None if it names none."""
    return git.resolve(repo.root, f"{ref}^{{commit}}")[0]


@dataclass(frozen=True)
class Registered:
    """A worktree as `git worktree list --porcelain` describes it."""

    path: Path  # resolved
    branch: str | None  # e.g. feature/x; None when detached
    locked: str | None  # the lock reason ("" for a lock without one); None when not locked


def worktrees(repo: Repo) -> list[Registered]:
    """Every worktree git knows for this repo; the main worktree first."""
    listing = git.run(repo.root, "worktree", "list", "--porcelain", "-z").stdout
    found: list[Registered] = []
    for record in listing.split("\0\0"):
        fields = [f for f in record.split("\0") if f]
        if not fields or not fields[0].startswith("worktree "):
            continue
        branch: str | None = None
        locked: str | None = None
        for f in fields[1:]:
            if f.startswith("branch "):
                branch = f[len("branch ") :].removeprefix("refs/heads/")
            elif f == "locked" or f.startswith("locked "):
                locked = f[len("locked ") :] if f.startswith("locked ") else ""
        found.append(Registered(Path(fields[0][len("worktree ") :]).resolve(), branch, locked))
    return found


def worktree_paths(repo: Repo) -> list[Path]:
    """Every worktree git knows for this repo, resolved; the main worktree first."""
    return [w.path for w in worktrees(repo)]


def status_paths(path: Path, *, untracked: bool) -> list[str]:
    """Paths `git status` reports in worktree `path` (changed, staged and, if asked, untracked files).

    --no-optional-locks keeps git from refreshing the index: looking never writes to it.
    """
    mode = "--untracked-files=all" if untracked else "--untracked-files=no"
    raw = git.run(path, "--no-optional-locks", "status", "--porcelain=v1", "-z", mode).stdout
    paths: list[str] = []
    skip = False
    for entry in raw.split("\0"):
        if skip:
            skip = False
        elif len(entry) >= 4:
            paths.append(entry[3:])
            skip = entry[0] in "RC"  # a rename's next field is its origin
    return paths


def _require_git(repo: Repo) -> None:
    if repo.git_common_dir is None:
        raise NotARepository(
            f"{repo.root} is not a git repository, so agents cannot get git worktrees",
            "give the agent a plain folder instead (--workspace DIR)",
        )


def create_git(
    repo: Repo, name: str, base: str | None = None, claim: Callable[[Workspace], None] | None = None
) -> Workspace:
    """Add worktree .fracta/worktrees/<name> on new branch feature/<name> from `base` or HEAD.

    Everything is checked before anything is touched; if git fails midway, the worktree and the
    branch it may have created are removed again, so a failure leaves nothing behind. `claim`
    is called once the path and the branch are known to be free, before either is created (the
    spawn journals them there, see journal.py); if it raises, nothing is created.
    """
    names.validate(name)
    repo.require_initialized()
    _require_git(repo)
    branch = branch_for(name)
    path = worktree_path(repo, name)
    atomic.ensure_dirs(repo.worktrees_dir)
    # Serialize fracta's own workspace changes, so a rollback never removes another call's work.
    with atomic.lock(repo.state / "workspaces.lock"):
        found, taken = git.resolve(
            repo.root, f"{base if base is not None else 'HEAD'}^{{commit}}", f"refs/heads/{branch}"
        )
        start = _resolve_base(repo, base, found)
        if taken is not None:
            raise AgentExists(
                f"branch {branch} already exists, so task {name!r} cannot get a new worktree",
                f"choose another task name, or, if its work is merged or not needed, delete it: git branch -D {branch}",
            )
        if path.exists() or _registered(repo, path):
            raise AgentExists(f"the worktree path {path} is already taken", _taken_hint(repo, name, path))
        ws = Workspace(kind=GIT, path=path, branch=branch, base=start)
        if claim is not None:
            claim(ws)
        args = ("worktree", "add", "--quiet", str(path), "-b", branch, start)
        try:
            # A spare checkout made ahead of time, if the control plane keeps one (see spares.py).
            done = spares.take(repo, start, path, branch)
            proc = None if done else git.run(repo.root, *args, check=False)
        except GitError as exc:  # git failed after the spare was moved into place
            _roll_back(repo, path, branch)
            raise GitError(exc.cmd, exc.returncode, exc.stdout, exc.stderr, hint=_ROLLED_BACK) from None
        if proc is not None and proc.returncode != 0:
            _roll_back(repo, path, branch)
            raise GitError(["git", *args], proc.returncode, proc.stdout, proc.stderr, hint=_ROLLED_BACK)
    return ws


def _taken_hint(repo: Repo, name: str, path: Path) -> str:
    if _registered(repo, path):  # a leftover worktree: the control plane adopts it as an agent
        return f"fracta up (or its next sweep) makes it agent {name!r}: then merge it, or fracta kill {name}"
    return "choose another task name, or move that folder away: git does not know it as a worktree, so fracta leaves it"


_ROLLED_BACK = "nothing was left behind (worktree and branch removed); fix the cause above and retry"


def _registered(repo: Repo, path: Path) -> bool:
    """Whether git has a worktree registered at `path` (its folder may be gone).

    Read from the repository's worktrees/<id>/gitdir files (gitrepository-layout(5)): the
    check is on every spawn's path, and a `git worktree list` costs a process.
    """
    if repo.git_common_dir is None:
        return False
    target = str(path.resolve())
    try:
        admins = os.scandir(repo.git_common_dir / "worktrees")
    except FileNotFoundError:
        return False
    with admins:
        for admin in admins:
            try:
                with open(os.path.join(admin.path, "gitdir")) as fh:
                    gitdir = fh.read().strip()
            except OSError:
                continue
            # git writes the real absolute path (or, with worktree.useRelativePaths, one relative
            # to the admin folder); only a same-named candidate is resolved, not all of them.
            folder = os.path.dirname(os.path.normpath(os.path.join(admin.path, gitdir)))
            if folder == target or (
                os.path.basename(folder) == os.path.basename(target) and os.path.realpath(folder) == target
            ):
                return True
    return False


def _resolve_base(repo: Repo, base: str | None, found: str | None) -> str:
    """The commit to start from (`found`, as resolved), or the error that says why there is none."""
    if found is not None:
        return found
    if base is None:
        raise InvalidInput(
            f"the repository at {repo.root} has no commit to start a worktree from",
            "make a first commit, or pass --base REF",
        )
    raise InvalidInput(
        f"unknown base ref {base!r}: it names no commit in this repository",
        "pass a branch, tag or commit that exists (see git branch --all, git log --oneline)",
    )


def _roll_back(repo: Repo, path: Path, branch: str) -> None:
    """Undo a half-done `git worktree add`; the caller checked that neither piece existed before."""
    if path.resolve() in worktree_paths(repo):
        git.run(repo.root, "worktree", "remove", "--force", "--force", str(path), check=False)
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
    git.run(repo.root, "worktree", "prune", check=False)
    if git.branch_exists(repo.root, branch):
        git.run(repo.root, "branch", "-D", branch, check=False)


def remove(repo: Repo, ws: Workspace) -> None:
    """Remove a git workspace's worktree and branch; callers save unsaved work first.

    Pieces that are already gone are fine.
    """
    _require_git(repo)
    path = ws.path.resolve()
    if repo.worktrees_dir.resolve() not in path.parents:
        raise Refused(
            f"{ws.path} is not a fracta worktree (those live in {repo.worktrees_dir})",
            "remove it yourself with git worktree remove, if you mean to",
        )
    if ws.branch is not None and not ws.branch.startswith(BRANCH_PREFIX):
        raise Refused(
            f"branch {ws.branch} is not an agent branch ({BRANCH_PREFIX}<name>); fracta will not delete it",
            f"delete it yourself if you mean to: git branch -D {ws.branch}",
        )
    with atomic.lock(repo.state / "workspaces.lock"):
        here = next((w for w in worktrees(repo) if w.path == path), None)
        if here is not None:
            # git locks a worktree "initializing" while `git worktree add` makes it; the lock stays
            # if that git was killed. A second --force removes such a one; a lock the user set
            # still stops us.
            force = ("--force", "--force") if here.locked == "initializing" else ("--force",)
            git.run(
                repo.root,
                "worktree",
                "remove",
                *force,
                str(path),
                hint=f"the worktree is still there; remove it by hand: git worktree remove --force {path}",
            )
        git.run(repo.root, "worktree", "prune")
        _remove_bare_folder(path)
        if ws.branch is not None and git.branch_exists(repo.root, ws.branch):
            git.run(
                repo.root,
                "branch",
                "-D",
                ws.branch,
                hint=f"is {ws.branch} checked out somewhere? switch that worktree to another branch and retry",
            )


def _remove_bare_folder(path: Path) -> None:
    """Remove a folder at a worktree's path that holds nothing but, at most, git's `.git` file.

    A `git worktree add` killed early leaves one, and it would block the name for good. A
    folder left there with anything else in it, which git no longer knows as a worktree, is
    not ours to delete blindly.
    """
    try:
        entries = os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return
    if not entries or (entries == [".git"] and (path / ".git").is_file()):
        shutil.rmtree(path, ignore_errors=True)
