"""Spare worktrees: checkouts made ahead of time, so that a spawn does not wait for one.

In a repository of any size, most of a spawn's time is `git worktree add` writing every tracked
file. The control plane keeps `workspaces.spares` (default 1) detached worktrees ready in
.fracta/worktrees/.spare-<id>. A spawn moves a ready spare into place and gives it its branch:
three quick git commands instead of a checkout (plus, when the spare was made from an older
commit, a checkout of only the files that changed since). A repository of less than about 200
files gets no spares: checking it out is as quick. The control plane then makes a new
spare in the background, once spawns have been quiet for a moment and at the lowest CPU
priority, so that it never slows agents that are starting.

A spare is ready once its marker (.spare-<id>.ready, holding its commit) exists. No spare is
made while the repository has a post-checkout hook: such a hook expects to run in the agent's
own worktree when it is created. Spares are taken only under the workspaces lock, and the
marker is removed before anything else, so one spare never goes to two agents. A spare without
a marker is being made, or was left by a control plane that died while making it; the next
control plane removes those. Nothing but fracta writes in a spare.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import threading
import time
from pathlib import Path

from . import atomic, git
from .errors import FractaError, GitError
from .repo import Repo

PREFIX = ".spare-"
MARK = ".ready"
QUIET = 1.0  # seconds without a spawn before a new spare is made
RETRY = 10.0  # seconds before trying again when a spare could not be made
# Below about 200 files (an index this small), checking out is as quick as moving a spare in,
# which costs two more git commands: small repositories get no spares.
MIN_INDEX_BYTES = 16 * 1024

log = logging.getLogger("fracta.spares")


def wanted(repo: Repo) -> int:
    """How many spares to keep (`workspaces.spares`); none outside a git repository or for a small one."""
    if not worth_it(repo):
        return 0
    return repo.config.integer("workspaces.spares", minimum=0)


def worth_it(repo: Repo) -> bool:
    """Whether the checkout is big enough for a spare to save time (judged by the index's size)."""
    if repo.git_common_dir is None:
        return False
    try:
        return os.stat(repo.git_common_dir / "index").st_size >= MIN_INDEX_BYTES
    except OSError:
        return False


def _entries(repo: Repo) -> list[str]:
    try:
        return os.listdir(repo.worktrees_dir)
    except FileNotFoundError:
        return []


def ready(repo: Repo) -> list[Path]:
    """The ready spares, oldest marker name first (the order does not matter, it is stable)."""
    found = [n[: -len(MARK)] for n in _entries(repo) if n.startswith(PREFIX) and n.endswith(MARK)]
    return [repo.worktrees_dir / n for n in sorted(found)]


def _marker(spare: Path) -> Path:
    return spare.with_name(spare.name + MARK)


def take(repo: Repo, start: str, path: Path, branch: str) -> bool:
    """Move a ready spare to `path` on new branch `branch` at commit `start`.

    The caller holds the workspaces lock and has checked that neither `path` nor `branch` exists.
    False when no spare could be used: the caller then checks out as usual. Once the spare is
    at `path` it is the agent's worktree, and a later failure raises for the caller to roll back.
    """
    if not worth_it(repo):
        return False
    for spare in ready(repo):
        marker = _marker(spare)
        try:
            commit, _, hook = marker.read_text().partition("\n")
            os.unlink(marker)  # claimed, before anything else
        except FileNotFoundError:
            continue
        if os.path.exists(hook.strip()):  # a post-checkout hook appeared since: it must run here
            discard(repo, spare)  # now, under the caller's lock: not beside its own checkout
            return False
        try:
            if commit != start:  # made before HEAD moved on: check out only what changed
                git.run(spare, "checkout", "--quiet", "--detach", start)
            git.run(repo.root, "worktree", "move", str(spare), str(path))
        except (FractaError, OSError) as exc:
            log.warning(
                "a spare worktree was unusable; checking out instead",
                extra={"event": "spares.unusable", "error": str(exc)},
            )
            discard(repo, spare)
            return False
        # Create the branch only if it does not exist (the empty old value), then point HEAD at it.
        git.run(repo.root, "update-ref", "-m", f"branch: Created from {start}", f"refs/heads/{branch}", start, "")
        git.run(path, "symbolic-ref", "-m", f"checkout: moving to {branch}", "HEAD", f"refs/heads/{branch}")
        log.info("took a spare worktree", extra={"event": "spares.taken", "path": str(path)})
        return True
    return False


def make(repo: Repo) -> Path | None:
    """Make one spare at the main worktree's HEAD; None when none is to be made (no commit yet, or a
    post-checkout hook). GitError, with nothing left behind, when git could not make it."""
    head = git.run(repo.root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
    if head.returncode != 0:
        return None  # no commit yet
    commit = head.stdout.strip()
    # A post-checkout hook must run in the agent's own worktree, at its spawn: no spares then.
    hook = Path(repo.root, git.out(repo.root, "rev-parse", "--git-path", "hooks/post-checkout"))
    if hook.exists():
        log.debug(
            "not making spare worktrees: the repository has a post-checkout hook",
            extra={"event": "spares.disabled", "hook": str(hook)},
        )
        return None
    atomic.ensure_dirs(repo.worktrees_dir)
    spare = repo.worktrees_dir / f"{PREFIX}{secrets.token_hex(4)}"
    args = ("worktree", "add", "--quiet", "--detach", str(spare), commit)
    proc = git.run(repo.root, *args, check=False, nice=True)
    if proc.returncode != 0:
        discard(repo, spare)
        raise GitError(["git", *args], proc.returncode, proc.stdout, proc.stderr[-500:], hint="nothing was left behind")
    atomic.write_text(_marker(spare), f"{commit}\n{hook}\n")  # take() checks the hook is still absent
    return spare


def discard(repo: Repo, spare: Path) -> None:
    """Remove a spare (ready or not) and its registration; pieces already gone are fine."""
    _marker(spare).unlink(missing_ok=True)
    git.run(repo.root, "worktree", "remove", "--force", "--force", str(spare), check=False)
    if spare.exists():
        shutil.rmtree(spare, ignore_errors=True)
        git.run(repo.root, "worktree", "prune", check=False)


def discard_all(repo: Repo, *, ready_too: bool) -> int:
    """Remove spares that are not ready (left by a process that died), and the ready ones if asked."""
    names = set(_entries(repo))
    count = 0
    for name in sorted(names):
        if not name.startswith(PREFIX) or name.endswith(MARK):
            continue
        if ready_too or f"{name}{MARK}" not in names:
            discard(repo, repo.worktrees_dir / name)
            count += 1
    return count


class Pool:
    """The control plane's spares: made in a background thread after spawns have been quiet."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._last_use = 0.0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="spares", daemon=True)
        self._thread.start()
        self._wake.set()

    def used(self) -> None:
        """A spawn happened (it may have taken a spare): refill once things are quiet."""
        self._last_use = time.monotonic()
        self._wake.set()

    def stop(self) -> None:
        """Stop making spares and remove them: a stopped control plane leaves no checkout behind."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        try:
            discard_all(self.repo, ready_too=True)
        except (FractaError, OSError) as exc:
            log.warning(
                "could not remove the spare worktrees", extra={"event": "spares.remove_failed", "error": str(exc)}
            )

    def _loop(self) -> None:
        try:
            discard_all(self.repo, ready_too=False)  # half-made by a control plane that died
        except (FractaError, OSError) as exc:
            log.warning(
                "could not remove unfinished spare worktrees",
                extra={"event": "spares.cleanup_failed", "error": str(exc)},
            )
        retry: float | None = None  # after a failure (a transient git error, say), try again later
        while not self._stopping.is_set():
            self._wake.wait(retry)
            self._wake.clear()
            while (quiet := self._last_use + QUIET - time.monotonic()) > 0:
                if self._stopping.wait(quiet):
                    return
            retry = None
            try:
                while not self._stopping.is_set() and len(ready(self.repo)) < wanted(self.repo):
                    if make(self.repo) is None:
                        break  # none wanted now: the next spawn looks again
            except (FractaError, OSError) as exc:  # a git failure or a bad config: try again soon
                log.warning("could not make a spare worktree", extra={"event": "spares.make_failed", "error": str(exc)})
                retry = RETRY
