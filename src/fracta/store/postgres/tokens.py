"""Tokens in PostgreSQL: only their sha256 hashes are stored; the plaintext stays where its
holder reads it (.fracta/token for the chessmaster, agents/<name>/token for an agent's launcher)."""

from __future__ import annotations

import contextlib
import hmac

from ... import names
from ...errors import AgentNotFound
from ...repo import Repo
from .agents import token_hash
from .db import Database


class PostgresTokens:
    def __init__(self, db: Database, repo: Repo) -> None:
        self.db = db
        self.repo = repo

    def chessmaster(self) -> str:
        return self.repo.token_path.read_text().strip()

    def agent(self, name: str) -> str:
        names.validate(name)
        try:
            return (self.repo.agent_dir(name) / "token").read_text().strip()
        except FileNotFoundError:
            raise AgentNotFound(
                f"no token for agent {name!r} on this machine", "run fracta list to see the agents"
            ) from None

    def register_chessmaster(self) -> None:
        """Let this machine's chessmaster token in (its hash, kept with other machines')."""
        try:
            token = self.chessmaster()
        except FileNotFoundError:
            return
        if token:
            digest = token_hash(token)
            insert = "INSERT INTO chessmaster_tokens (hash) VALUES (%s) ON CONFLICT DO NOTHING"
            self.db.run(lambda c: c.execute(insert, (digest,)))

    def resolve(self, token: str) -> str | None:
        if not token:
            return None
        # No token file on this machine: another machine's chessmaster may still be let in by hash.
        with contextlib.suppress(FileNotFoundError):
            if hmac.compare_digest(token, self.chessmaster()):
                return names.CHESSMASTER
        digest = token_hash(token)
        row = self.db.single(
            lambda c: c.execute(
                "SELECT name FROM agents WHERE token_hash = %s"
                " UNION ALL SELECT %s FROM chessmaster_tokens WHERE hash = %s LIMIT 1",
                (digest, names.CHESSMASTER, digest),
            ).fetchone()
        )
        return None if row is None else str(row[0])
