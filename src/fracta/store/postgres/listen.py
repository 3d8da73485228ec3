"""LISTEN in a background thread: a callback per notification, surviving connection loss.

One dedicated autocommit connection LISTENs on the channels and hands each notification to a
callback. When the connection is lost, the thread connects again (with backoff, for as long as
it runs) and LISTENs again; notifications sent in the gap are lost, so the callback then gets a
RECONNECTED notice: whoever waits on a notification re-checks the state it stands for.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from ...errors import StoreUnavailable
from .connect import RETRY_SECONDS, connect, scrub

POLL_SECONDS = 0.5  # how soon a stopped listener notices
log = logging.getLogger("fracta.store.postgres")


@dataclass(frozen=True)
class Notice:
    channel: str
    payload: str
    reconnected: bool = False  # True: notifications may have been missed; re-check the state


RECONNECTED = Notice("", "", reconnected=True)


class Listener:
    """A running LISTEN thread; `stop()` ends it (within about POLL_SECONDS)."""

    def __init__(self, url: str, channels: Sequence[str], on_notify: Callable[[Notice], None]) -> None:
        self.url = url
        self.channels = list(channels)
        self.on_notify = on_notify
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None
        self._error: StoreUnavailable | None = None
        self._thread = threading.Thread(target=self._loop, name="fracta-listen", daemon=True)

    @property
    def backend_pid(self) -> int | None:
        """The server process of the listening connection (None between connections)."""
        conn = self._conn
        return conn.info.backend_pid if conn is not None and not conn.closed else None

    def start(self, timeout: float) -> None:
        """Start, and return once LISTEN is in place; StoreUnavailable if not within `timeout`."""
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise self._error or StoreUnavailable(
                f"could not LISTEN within {timeout:g}s", "check the database (fracta doctor)"
            )

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()

    def _loop(self) -> None:
        delay = 0.05
        first = True
        while not self._stop.is_set():
            try:
                with connect(self.url, autocommit=True) as conn:
                    for channel in self.channels:
                        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    self._conn = conn
                    self._ready.set()
                    delay = 0.05
                    if not first:
                        self._deliver(RECONNECTED)
                    first = False
                    self._receive(conn)
            except StoreUnavailable as exc:
                self._error = exc
                log.warning("cannot LISTEN: %s", exc.message, extra={"event": "store.listen_failed"})
            except psycopg.OperationalError as exc:
                text = scrub(str(exc).strip(), self.url)
                log.warning("LISTEN connection lost (%s); connecting again", text, extra={"event": "store.listen_lost"})
            finally:
                self._conn = None
            self._stop.wait(delay)
            delay = min(delay * 2, 2.0)

    def _receive(self, conn: psycopg.Connection[Any]) -> None:
        while not self._stop.is_set():
            for note in conn.notifies(timeout=POLL_SECONDS):
                self._deliver(Notice(note.channel, note.payload))
                if self._stop.is_set():
                    return

    def _deliver(self, notice: Notice) -> None:
        try:
            self.on_notify(notice)
        except Exception:  # a failing callback must not end the listening (it would go deaf)
            log.exception("a notification's callback failed on %s", notice, extra={"event": "store.notify_failed"})


def listen(
    url: str,
    channels: Sequence[str],
    on_notify: Callable[[Notice], None],
    *,
    timeout: float = RETRY_SECONDS,
) -> Listener:
    """A started Listener: LISTEN is in place when this returns (notifications from then on arrive)."""
    listener = Listener(url, channels, on_notify)
    listener.start(timeout)
    return listener
