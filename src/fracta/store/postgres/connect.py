"""Connecting to the PostgreSQL state store: clear errors, retries while the database is away,
and never a password in anything shown.

`connect` and `open_pool` turn libpq's failures into one StoreUnavailable (exit 8) saying what is
wrong — refused, no answer, unknown host, wrong password, no such database — where (database,
host:port) and what to check. `run` does one operation in one transaction on a pooled
connection, and runs it again from the start while the connection is lost (a restart, a
failover, a network cut), with backoff, for a bounded time; then StoreUnavailable naming the
database. `redact` hides the password of any URL shown.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import unquote

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from ...errors import ConfigError, StoreUnavailable

T = TypeVar("T")
CONNECT_TIMEOUT = 5  # seconds libpq waits for a server to answer (connect_timeout)
RETRY_SECONDS = 10.0  # state.retry_seconds' default
WHERE = "the database URL (FRACTA_DATABASE_URL, or state.url in fracta.yaml)"
# Errors after which running the operation again may succeed: the connection is gone
# (class 08, the server shutting down or starting), or the transaction lost a race (40001, 40P01).
RETRY_STATES = ("08", "57P01", "57P02", "57P03", "40001", "40P01")

_QUERY_PASSWORD = re.compile(r"([?&]password=)([^&#]*)", re.IGNORECASE)
_KEYWORD_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


# --- showing a URL -------------------------------------------------------------------------------


def redact(url: str) -> str:
    """`url` with its password shown as ***: in the user part (`user:pw@`), in a `password=`
    query parameter, or in a keyword string (`host=... password=...`)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _KEYWORD_PASSWORD.sub(r"\1***", url)
    query = rest.find("?")
    authority_end = rest.rfind("@", 0, query if query >= 0 else len(rest))
    if authority_end >= 0:  # user[:password]@host...; the last @ before the query ends it
        user, colon, _ = rest[:authority_end].partition(":")
        rest = user + (":***" if colon else "") + rest[authority_end:]
    return scheme + sep + _QUERY_PASSWORD.sub(r"\1***", rest)


def secrets_of(url: str) -> list[str]:
    """Every form of the password in `url` (as written and decoded), to scrub from messages."""
    found: list[str] = []
    _, sep, rest = url.partition("://")
    if sep:
        query = rest.find("?")
        at = rest.rfind("@", 0, query if query >= 0 else len(rest))
        if at >= 0 and ":" in rest[:at]:
            found.append(rest[:at].partition(":")[2])
        found += [m.group(2) for m in _QUERY_PASSWORD.finditer(rest)]
    else:
        found += [m.group(2).strip("'") for m in _KEYWORD_PASSWORD.finditer(url)]
    with contextlib.suppress(psycopg.Error):  # an unreadable URL: the forms found above are all there is
        found.append(str(conninfo_to_dict(url).get("password") or ""))
    found += [unquote(s) for s in found]
    return sorted({s for s in found if s}, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """`text` without any form of `url`'s password."""
    for secret in secrets_of(url):
        text = text.replace(secret, "***")
    return text


def where(url: str) -> str:
    """'database "NAME" at HOST:PORT' for messages (no user, no password)."""
    params = _params(url)
    host = str(params.get("host") or params.get("hostaddr") or "the local socket")
    user = str(params.get("user") or "")
    return f'database "{params.get("dbname") or user or "?"}" at {host}:{params.get("port") or 5432}'


def _params(url: str) -> dict[str, Any]:
    try:
        return conninfo_to_dict(url)
    except psycopg.Error as exc:
        raise bad_url(url, exc) from None


def bad_url(url: str, exc: BaseException) -> ConfigError:
    """A URL libpq cannot read (exit 2, as a bad config): shown without its password."""
    text = scrub(str(exc).strip(), url).removeprefix("connection is bad: ")
    return ConfigError(
        f"not a valid PostgreSQL URL: {redact(url)} ({text})",
        f"check {WHERE}: postgresql://USER:PASSWORD@HOST:PORT/DATABASE",
    )


# --- connecting ----------------------------------------------------------------------------------


def unavailable(url: str, exc: BaseException, doing: str = "cannot connect to") -> StoreUnavailable:
    """libpq's failure as a StoreUnavailable saying what is wrong, where and what to check."""
    text = scrub(str(exc).strip(), url)
    low = text.lower()
    user = str(_params(url).get("user") or "")
    hint = f"check that the server is running and reachable there, and {WHERE}"
    if "password authentication failed" in low:
        reason = f'password authentication failed for user "{user}"'
        hint = f"check the user name and password in {WHERE}"
    elif "no password supplied" in low:
        reason = f'the server asks for a password for user "{user}" and the URL gives none'
        hint = f"add the password to {WHERE}"
    elif match := re.search(r'(database|role) "[^"]*" does not exist', text):
        reason = f"the server has no such {match.group(1)}: {match.group(0)}"
        hint = f"create it on the server, or correct its name in {WHERE}"
    elif "connection refused" in low:
        reason = "connection refused (is the server running and accepting TCP connections there?)"
    elif "timeout expired" in low or "timed out" in low:
        reason = "no answer in time (a firewall, a wrong host, or a server too busy)"
    elif "could not translate host name" in low:
        reason = "unknown host name"
        hint = f"check the host in {WHERE}"
    else:
        reason = text.splitlines()[-1].removeprefix("FATAL:").strip() if text else type(exc).__name__
    return StoreUnavailable(f"{doing} the PostgreSQL {where(url)}: {reason}", hint)


def _options(url: str, autocommit: bool) -> dict[str, Any]:
    """connect's keyword arguments: fracta's defaults where the URL sets none."""
    params = _params(url)
    defaults: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT, "application_name": "fracta"}
    return {k: v for k, v in defaults.items() if k not in params} | {"autocommit": autocommit}


def connect(url: str, *, autocommit: bool = False, retry_seconds: float = 0.0) -> psycopg.Connection[Any]:
    """One connection, or a StoreUnavailable saying why not.

    A server that is away for a moment (refusing connections, starting up or shutting down: a
    restart, a Compose service not up yet) is tried again for `retry_seconds`, with backoff; a
    wrong password, an unknown database or host is final at once.
    """
    deadline = time.monotonic() + retry_seconds
    delay = 0.05
    while True:
        try:
            return psycopg.connect(url, **_options(url, autocommit))
        except psycopg.OperationalError as exc:
            if re.search(r"invalid .*(connection option|URI)", str(exc)):  # libpq reads some values only now
                raise bad_url(url, exc) from None
            if not _transient(exc) or time.monotonic() + delay > deadline:
                raise unavailable(url, exc) from None
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


# libpq's answers that trying again will not change (a connection's failure mostly carries no
# SQLSTATE: the text is what there is). Anything else while connecting (refused, reset, "the
# database system is starting up", "not yet accepting connections") is a server not there yet.
_FINAL = ("password", "does not exist", "could not translate host name", "permission denied", "ssl", "certificate")


def _transient(exc: psycopg.OperationalError) -> bool:
    """The server is not there yet or just now, rather than refusing us for good."""
    if exc.sqlstate is not None:
        return exc.sqlstate.startswith(RETRY_STATES)
    low = str(exc).lower()
    return not any(word in low for word in _FINAL)


def open_pool(url: str, *, size: int = 4, retry_seconds: float = RETRY_SECONDS) -> ConnectionPool:
    """A pool of `size` connections, opened: the first is made here, so a bad URL fails clearly."""
    connect(url, retry_seconds=retry_seconds).close()
    # Autocommit: a one-statement operation (run with transaction=False) is one round trip, not
    # three (BEGIN, the statement, COMMIT); run() opens its transaction explicitly. One connection
    # at first, more only when threads wait: psycopg_pool hands connections out first in, first
    # out, so a thread's operations cycling through `size` idle connections measured 737 us a
    # one-statement transaction (median) against 443 us on one connection (bench/store_postgres.py).
    options = _options(url, autocommit=True)
    pool = ConnectionPool(
        url, min_size=1, max_size=size, kwargs=options, open=False, timeout=max(retry_seconds, 1.0), name="fracta"
    )
    try:
        pool.open(wait=True, timeout=max(retry_seconds, CONNECT_TIMEOUT * 2))
    except PoolTimeout as exc:
        pool.close()
        raise _diagnosed(url, exc, "cannot open connections to") from None
    return pool


def _diagnosed(url: str, exc: BaseException, doing: str) -> StoreUnavailable:
    """Why the database is away, from one fresh attempt (a pool's own errors say only 'timeout')."""
    try:
        psycopg.connect(url, **_options(url, autocommit=True)).close()
    except psycopg.OperationalError as fresh:
        return unavailable(url, fresh, doing)
    return unavailable(url, exc, doing)


# --- running operations --------------------------------------------------------------------------


def retryable(exc: psycopg.OperationalError) -> bool:
    """The connection was lost (or the transaction lost a race): running again may succeed."""
    if isinstance(exc, PoolTimeout):
        return True
    state = exc.sqlstate
    return state is None or state.startswith(RETRY_STATES)  # no SQLSTATE: the client saw the line drop


def run(
    pool: ConnectionPool,
    fn: Callable[[psycopg.Connection[Any]], T],
    retry_seconds: float = RETRY_SECONDS,
    *,
    transaction: bool = True,
) -> T:
    """`fn(conn)` in one transaction (without `transaction`: `fn` runs a single statement, atomic
    by itself) on a pooled connection, run again from the start while the connection is lost,
    with backoff, for up to `retry_seconds`; then StoreUnavailable.

    A lost connection rolled the transaction back, unless it was lost during the commit itself,
    when its fate is unknown: `fn` must be safe to run again (idempotent, or checking first).
    """
    deadline = time.monotonic() + retry_seconds
    delay = 0.05
    while True:
        try:
            with pool.connection(timeout=max(deadline - time.monotonic(), 0.1)) as conn:
                if not transaction:  # one statement: atomic on its own (autocommit)
                    return fn(conn)
                with conn.transaction():
                    return fn(conn)
        except psycopg.OperationalError as exc:
            if not retryable(exc):
                raise
            left = deadline - time.monotonic()
            if left <= 0:
                doing = f"lost the connection for {retry_seconds:g}s, cannot reconnect to"
                url = pool.conninfo if isinstance(pool.conninfo, str) else ""  # open_pool gives a str
                raise _diagnosed(url, exc, doing) from None
            if not isinstance(exc, PoolTimeout):
                pool.check()  # the pool's other idle connections likely died too: replace them now
            time.sleep(min(delay, left))
            delay = min(delay * 2, 1.0)
