"""A change counter that threads wait on: the event stream sleeps on it rather than polling when
changes are pushed (PostgreSQL's LISTEN/NOTIFY; with the files backend, the control plane's
watch on events.jsonl); without a control plane's pushes, waits time out after a short poll."""

from __future__ import annotations

import threading


class Changes:
    def __init__(self) -> None:
        self._version = 0
        self._cond = threading.Condition()
        self.pushed = False  # the store tells us of every change: waits may be long

    def bump(self) -> None:
        with self._cond:
            self._version += 1
            self._cond.notify_all()

    @property
    def version(self) -> int:
        return self._version

    def wait(self, seen: int, timeout: float) -> int:
        """Block until the version moves past `seen`, or `timeout` seconds; returns the version."""
        with self._cond:
            self._cond.wait_for(lambda: self._version != seen, timeout)
            return self._version
