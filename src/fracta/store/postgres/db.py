"""The PostgreSQL store's parts share one Database: operations run through connect.run (one
transaction each, retried while the connection is lost), and holds (an agent's row lock, the
scheduler's lock) take a connection of their own for as long as they last."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool

from ...errors import StoreUnavailable
from . import connect

T = TypeVar("T")
CHANNEL = "fracta"  # every notification (Store.subscribe's topics) goes out on this channel


class Database:
    def __init__(self, url: str, pool: ConnectionPool, holds: ConnectionPool, retry: float) -> None:
        self.url = url
        self.pool = pool  # short operations (run)
        self.holds = holds  # long holds: kept apart so they cannot starve the operations they wait on
        self.retry = retry

    def run(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """`work(conn)` in one transaction, run again from the start if the connection is lost:
        every `work` in this package is safe to repeat."""
        return connect.run(self.pool, work, self.retry)

    def single(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """`work(conn)` issuing ONE statement, atomic by itself: no BEGIN/COMMIT round trips
        around it (the pool's connections are autocommit). Retried like `run`."""
        return connect.run(self.pool, work, self.retry, transaction=False)

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A checked connection (not autocommit) for a hold; the caller commits or rolls back."""
        deadline = time.monotonic() + self.retry
        while True:
            try:
                conn = self.holds.getconn(timeout=max(deadline - time.monotonic(), 0.1))
                break
            except psycopg.OperationalError as exc:
                if time.monotonic() >= deadline:
                    raise self.unavailable(exc) from None
                time.sleep(0.2)
        try:
            yield conn
        finally:
            self.holds.putconn(conn)

    def unavailable(self, exc: BaseException) -> StoreUnavailable:
        return connect.unavailable(self.url, exc, "lost the connection to")

    def close(self) -> None:
        self.holds.close()
        self.pool.close()


def notify(conn: psycopg.Connection[Any], topic: str) -> None:
    """Tell subscribers about `topic` when (and only if) this transaction commits."""
    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, topic))
