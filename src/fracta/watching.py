"""`fracta watch`'s feed: says when the fleet may have changed, so the view is redrawn then.

It follows the control plane's event stream (GET /v1/events, server-sent events). With no
control plane running, or once its stream ends, it looks at the store's event log itself every
POLL seconds, and goes back to the stream when a control plane is up again. Which of the two it
uses is in `source`, for the view to say.
"""

from __future__ import annotations

import threading

from .errors import FractaError
from .repo import Repo

POLL = 1.0  # seconds between looks at the store's event log when no control plane runs
NOT_RUNNING = "control plane not running: reading the store (fracta up)"


class Feed:
    """A background thread that sets `changed` on every event (a burst sets it once per take)."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self.changed = threading.Event()
        self.source = NOT_RUNNING
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watch-feed", daemon=True)

    def start(self) -> Feed:
        from .control import daemon

        info = daemon.read_info(self.repo)  # said at once, so the first view says where it reads
        self.source = _live(info.url) if info else NOT_RUNNING
        self._thread.start()
        return self

    def wait(self, timeout: float) -> bool:
        """Until something changed (True) or `timeout` seconds passed (False)."""
        return self.changed.wait(timeout)

    def take(self) -> None:
        """The view is about to be drawn: what changed so far is in it."""
        self.changed.clear()

    def close(self) -> None:
        self._closed.set()

    def _end(self) -> int:
        last = self.repo.store.events.tail(1)
        return last[-1].end if last else 0

    def _run(self) -> None:
        from .control import client, daemon

        cursor = self._end()
        while not self._closed.is_set():
            info = daemon.read_info(self.repo)
            if info is not None:
                self._announce(_live(info.url))
                try:
                    for past, _ in client.follow(self.repo, info, cursor):
                        cursor = past  # where to resume if the stream breaks
                        self.changed.set()
                        if self._closed.is_set():
                            return
                except FractaError:
                    pass  # stopped, or killed: look at the store until it is back
            self._announce(NOT_RUNNING)
            if self._closed.wait(POLL):
                return
            try:
                end = self._end()
            except FractaError:
                continue  # the store is unreachable for now (the view says so when it draws)
            if end != cursor:
                cursor = end
                self.changed.set()

    def _announce(self, source: str) -> None:
        if source != self.source:
            self.source = source
            self.changed.set()


def _live(url: str) -> str:
    return f"live: {url}/v1/events"
