"""Versioned schema migrations: applied in order at start, once, whoever starts first.

A migration is (version, description, SQL); versions run 1, 2, 3, ... and a released one is never
edited (a change is a new version). `apply` runs every migration the database lacks in ONE
transaction under a transaction-scoped advisory lock, so two control planes starting at once
apply each exactly once (the second waits, then finds nothing to do) and a failing migration
leaves the database as it was. A database whose version is newer than the code's is refused
(SchemaTooNew) before anything is touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from ...errors import SchemaTooNew

# pg_advisory_xact_lock's key for migrations: any fixed 64-bit number, the same in every fracta.
LOCK_KEY = 0x66726163_74610001  # "fracta", 1
TABLE = """
CREATE TABLE IF NOT EXISTS fracta_schema (
    version integer PRIMARY KEY,
    description text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sql: str  # fixed text, possibly several statements; never built from input


def latest(migrations: Sequence[Migration]) -> int:
    """The version the migrations bring a database to (0 for none)."""
    return max((m.version for m in migrations), default=0)


def _checked(migrations: Sequence[Migration]) -> list[Migration]:
    ordered = sorted(migrations, key=lambda m: m.version)
    versions = [m.version for m in ordered]
    if versions != list(range(1, len(ordered) + 1)):
        raise ValueError(f"migration versions must be 1, 2, 3, ... without gaps or repeats: {versions}")
    return ordered


def current_version(conn: psycopg.Connection[Any]) -> int:
    """The database's schema version: 0 when fracta has never set it up."""
    row = conn.execute("SELECT to_regclass('fracta_schema') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return 0
    found = conn.execute("SELECT max(version) FROM fracta_schema").fetchone()
    return int(found[0]) if found and found[0] is not None else 0


def apply(conn: psycopg.Connection[Any], migrations: Sequence[Migration]) -> list[int]:
    """Bring the database up to the newest migration; returns the versions applied here.

    SchemaTooNew when the database is ahead of `migrations` (a newer fracta has used it)."""
    ordered = _checked(migrations)
    known = latest(ordered)
    applied: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])  # held until this commits
        conn.execute(TABLE)
        found = current_version(conn)  # read under the lock: whoever went first has committed
        if found > known:
            raise SchemaTooNew(_database(conn), found, known)
        for migration in ordered[found:]:
            conn.execute(migration.sql)
            conn.execute(
                "INSERT INTO fracta_schema (version, description) VALUES (%s, %s)",
                [migration.version, migration.description],
            )
            applied.append(migration.version)
    return applied


def _database(conn: psycopg.Connection[Any]) -> str:
    info = conn.info
    return f'"{info.dbname}" at {info.host}:{info.port}'  # the URL's other parts: no password here
