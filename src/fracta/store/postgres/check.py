"""What `fracta doctor` asks of the state store's database: reachable (and which server), schema
version against this fracta's, and LISTEN/NOTIFY working. The password is never shown."""

from __future__ import annotations

import secrets
from typing import Any, NamedTuple

import psycopg
from psycopg import sql

from ...errors import FractaError, SchemaTooNew
from .connect import connect, redact, scrub, where
from .migrations import current_version

NOTIFY_TIMEOUT = 5.0


class Finding(NamedTuple):
    name: str
    ok: bool
    text: str
    fix: str | None = None


def check(url: str, known: int, timeout: float = NOTIFY_TIMEOUT) -> list[Finding]:
    """Each check's finding; a database that cannot be reached is one failing finding."""
    try:
        conn = connect(url, autocommit=True)
    except FractaError as exc:
        return [Finding("database", False, exc.message, exc.hint or None)]
    with conn:
        try:
            version = conn.execute("SHOW server_version").fetchone()
            shown = str(version[0]).split()[0] if version else "?"
            findings = [Finding("database", True, f"PostgreSQL {shown}, {redact(url)}")]
            findings.append(_schema(conn, url, known))
            findings.append(_listen(conn, timeout))
        except psycopg.Error as exc:
            text = f"the PostgreSQL {where(url)} failed a check: {scrub(str(exc).strip(), url)}"
            findings = [Finding("database", False, text, "run fracta doctor again; check the server's log")]
    return findings


def _schema(conn: psycopg.Connection[Any], url: str, known: int) -> Finding:
    found = current_version(conn)
    if found > known:
        error = SchemaTooNew(where(url), found, known)
        return Finding("schema", False, error.message, error.hint)
    if found == 0:
        return Finding("schema", True, f"no fracta schema yet: the control plane creates it (version {known}) at start")
    if found < known:
        return Finding("schema", True, f"schema version {found}: the control plane migrates it to {known} at start")
    return Finding("schema", True, f"schema version {found}, the one this fracta knows")


def _listen(conn: psycopg.Connection[Any], timeout: float) -> Finding:
    """LISTEN, NOTIFY ourselves, and wait for it to come back."""
    channel = f"fracta_doctor_{secrets.token_hex(4)}"
    payload = secrets.token_hex(8)
    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
    conn.execute("SELECT pg_notify(%s, %s)", [channel, payload])
    heard = any(n.payload == payload for n in conn.notifies(timeout=timeout, stop_after=1))
    conn.execute(sql.SQL("UNLISTEN {}").format(sql.Identifier(channel)))
    if heard:
        return Finding("LISTEN/NOTIFY", True, "a notification came back: waiters are woken without polling")
    return Finding(
        "LISTEN/NOTIFY",
        False,
        f"a NOTIFY to ourselves did not come back within {timeout:g}s",
        "connect to PostgreSQL directly, or through a session-mode pooler: LISTEN needs its own session "
        "(PgBouncer in transaction mode drops it)",
    )
