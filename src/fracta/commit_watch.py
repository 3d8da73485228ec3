"""The control plane's commit watcher: git's ref files and reflogs, watched with watchdog.

Any change under the common git dir's refs/ (a branch moved), worktrees/ (a worktree's HEAD and
its reflog) or the common dir itself (packed-refs, reftable) wakes one thread, which runs
commits.check_all: the agents whose branch tip or worktree reflog changed are checked, each under
its record's lock, so the hook and the watcher never record a commit twice. The thread also runs
at start (commits made while no control plane ran) and whenever `poke` is called (the supervisor
does on every reaper sweep), so an event the OS dropped delays a commit by at most one sweep.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from . import commits, hooks
from .errors import FractaError
from .repo import Repo

log = logging.getLogger("fracta.commits")
STOP_WAIT = 5.0  # seconds
SETTLE = 0.05  # seconds: a commit writes several files; one pass after them, not one per file


class Watcher:
    """One thread that records agents' commits when git's refs change."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.observer: Any = None
        self.thread: threading.Thread | None = None
        self.stats: dict[str, tuple[int, int]] = {}  # each agent's reflog (size, mtime) at the last pass

    def start(self) -> None:
        common = self.repo.git_common_dir
        if common is None:
            return
        self._refresh_hook()
        try:
            self.observer = self._observe(str(common))
        except OSError as exc:  # no inotify: the sweeps still find every commit, only later
            log.warning(
                "cannot watch git for commits; checking on every sweep only",
                extra={"event": "commits.unwatched", "error": str(exc)},
            )
        self.thread = threading.Thread(target=self._loop, name="commit-watch", daemon=True)
        self.thread.start()
        self.poke()

    def poke(self) -> None:
        """Check every agent soon (at start and on every reaper sweep)."""
        self.wake.set()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        if self.observer is not None:
            self.observer.stop()
        if self.thread is not None:
            self.thread.join(timeout=STOP_WAIT)  # a pass under way ends; one cut short loses nothing

    def _observe(self, common: str) -> Any:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        poke = self.poke

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                path = str(getattr(event, "dest_path", "") or event.src_path)
                # Lock files come and go around every ref update; the index changes on every `git add`.
                if not event.is_directory and not path.endswith((".lock", "/index")):
                    poke()

        observer = Observer()
        for folder, recursive in (
            (common, False),  # packed-refs, HEAD
            (os.path.join(common, "refs"), True),
            (os.path.join(common, "worktrees"), True),
            (os.path.join(common, "reftable"), True),
        ):
            try:
                if folder.endswith("worktrees"):
                    os.makedirs(folder, exist_ok=True)  # git makes it at the first `git worktree add`
                if os.path.isdir(folder):
                    observer.schedule(Handler(), folder, recursive=recursive)
            except OSError as exc:  # e.g. out of inotify watches: the sweeps still find every commit
                extra = {"event": "commits.folder_unwatched", "folder": folder, "error": str(exc)}
                log.warning("cannot watch a git folder for commits", extra=extra)
        observer.daemon = True
        observer.start()
        return observer

    def _loop(self) -> None:
        while not self.stopping.is_set():
            self.wake.wait()
            if self.stopping.wait(SETTLE):
                return
            self.wake.clear()
            try:
                for noticed in commits.check_all(self.repo, by="watcher", stats=self.stats):
                    log.info(
                        "commits recorded",
                        extra={
                            "event": "commits.recorded",
                            "agent": noticed.agent,
                            "commits": len(noticed.commits),
                            "foreign": len(noticed.foreign),
                        },
                    )
            except FractaError as exc:
                log.warning(
                    "checking agents' commits failed", extra={"event": "commits.check_failed", "error": exc.message}
                )
            except Exception:  # the watcher must outlive any one bad pass
                log.exception("checking agents' commits crashed", extra={"event": "commits.check_crashed"})

    def _refresh_hook(self) -> None:
        """Rewrite fracta's post-commit hook when it runs another Python than this one (or an older script)."""
        try:
            refreshed = hooks.refresh(self.repo)
        except (FractaError, OSError) as exc:
            extra = {"event": "hook.refresh_failed", "error": str(exc)}
            log.warning("the post-commit hook could not be refreshed", extra=extra)
            return
        if refreshed is not None:
            log.info("post-commit hook refreshed", extra={"event": "hook.refreshed", "hook": str(refreshed.hook)})
