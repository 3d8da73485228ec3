"""Following this fracta's Jobs by watch, not by polling: list, then watch from the list's
resourceVersion; list again when the server says the version is gone (HTTP 410); reconnect
after any other failure, after a pause. Each list is a resync (a missed event is caught up).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ...errors import ClusterError
from .api import Api, Gone, Stream

log = logging.getLogger("fracta.launchers.kubernetes")
WATCH_TIMEOUT = 300.0  # seconds the server keeps one watch open; then it is renewed from the last version
RETRY_PAUSE = 1.0  # seconds between reconnections after a failure

OnEvent = Callable[[str, dict[str, Any]], None]  # (ADDED | MODIFIED | DELETED, the Job)
OnList = Callable[[list[dict[str, Any]]], None]  # every Job, after a (re)list


class JobWatch:
    """A daemon thread following the Jobs that match `selector`, calling back on each change."""

    def __init__(
        self,
        api: Api,
        selector: str,
        on_event: OnEvent,
        on_list: OnList,
        *,
        timeout: float = WATCH_TIMEOUT,
        retry: float = RETRY_PAUSE,
    ) -> None:
        self.api, self.selector = api, selector
        self.on_event, self.on_list = on_event, on_list
        self.timeout, self.retry = timeout, retry
        self.lists = 0  # full lists done (tests and the benchmark read it)
        self._stopped = threading.Event()
        self._stream: Stream | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True, name="k8s-job-watch")

    def start(self) -> None:
        self._thread.start()

    def stop(self, wait: float = 5.0) -> None:
        self._stopped.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.close()
        self._thread.join(wait)

    def _run(self) -> None:
        version: str | None = None
        while not self._stopped.is_set():
            try:
                if version is None:
                    version = self._list()
                version = self._follow(version)
            except Gone:
                log.info("the Job watch's version expired: listing again", extra={"event": "k8s.watch.relist"})
                version = None
            except (ClusterError, OSError) as exc:
                if self._stopped.is_set():
                    return
                extra = {"event": "k8s.watch.broken", "error": str(exc)}
                log.warning("the Job watch broke off; reconnecting", extra=extra)
                version = None  # a resync after the gap: events may have been missed meanwhile
                self._stopped.wait(self.retry)
            except Exception:  # a bug in a callback must not end the watch for every agent
                log.exception("handling a Job event failed", extra={"event": "k8s.watch.crashed"})
                version = None
                self._stopped.wait(self.retry)

    def _list(self) -> str | None:
        jobs, version = self.api.list_jobs(self.selector)
        self.lists += 1
        self.on_list(jobs)
        return version

    def _follow(self, version: str | None) -> str | None:
        """Watch until the server ends the stream; returns the last version seen, to go on from."""
        stream = self.api.watch_jobs(self.selector, version, self.timeout)
        with self._lock:
            if self._stopped.is_set():
                stream.close()
                return version
            self._stream = stream
        try:
            for event in stream:
                job = event.get("object") or {}
                seen = (job.get("metadata") or {}).get("resourceVersion")
                version = str(seen) if seen else version
                if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                    self.on_event(str(event["type"]), job)
                # BOOKMARK: only its resourceVersion counts, taken above.
        finally:
            with self._lock:
                self._stream = None
            stream.close()
        return version
