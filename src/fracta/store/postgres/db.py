"""Transactions for the PostgreSQL store's parts: one pooled connection per operation, retried
while the database is away, then a clear StoreUnavailable."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import psycopg
from psycopg_pool import ConnectionPool

from ...errors import StoreUnavailable

T = TypeVar("T")
CHANNEL = "fracta"  # every notification (Store.subscribe's topics) goes out on this channel


class Database:
    """A pool of autocommit connections; each `run` is one transaction."""

    def __init__(self, pool: ConnectionPool, retry: float, where: str) -> None:
        self.pool = pool
        self.retry = retry
        self.where = where  # the URL without its password, for error messages

    def run(self, work: Callable[[psycopg.Connection], T]) -> T:
        """`work(conn)` in one transaction, run again from the start if the connection is lost
        (it committed nothing then, or its commit's fate is unknown: every `work` here is safe
        to repeat, or repeats harmlessly), for up to `retry` seconds."""
        deadline = time.monotonic() + self.retry
        while True:
            try:
                with self.pool.connection() as conn, conn.transaction():
                    return work(conn)
            except psycopg.OperationalError as exc:
                if time.monotonic() >= deadline:
                    raise self.unavailable(exc) from None
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection for a longer hold (an agent's row lock, the scheduler's lock)."""
        deadline = time.monotonic() + self.retry
        while True:
            try:
                conn = self.pool.getconn()
                break
            except psycopg.OperationalError as exc:
                if time.monotonic() >= deadline:
                    raise self.unavailable(exc) from None
                time.sleep(0.5)
        try:
            yield conn
        finally:
            self.pool.putconn(conn)

    def unavailable(self, exc: BaseException) -> StoreUnavailable:
        return StoreUnavailable(
            f"the PostgreSQL state store at {self.where} is unavailable: {str(exc).strip() or type(exc).__name__}",
            "check that the database is running and reachable (fracta doctor), then retry",
        )


def notify(conn: psycopg.Connection, topic: str) -> None:
    """Tell subscribers about `topic` when (and only if) this transaction commits."""
    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, topic))
