"""Who is calling: the server derives the caller from the bearer token, never from the request."""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass

from . import names
from .errors import Forbidden
from .repo import Repo


@dataclass(frozen=True)
class Caller:
    name: str  # an agent name, or "chessmaster"

    @property
    def is_chessmaster(self) -> bool:
        return self.name == names.CHESSMASTER

    def require_chessmaster(self, action: str) -> None:
        if not self.is_chessmaster:
            raise Forbidden(f"agent {self.name!r} may not {action}", "only the chessmaster may do this")

    def require_self(self, name: str, action: str) -> None:
        if not self.is_chessmaster and name != self.name:
            raise Forbidden(
                f"agent {self.name!r} may not {action} as or for {name!r}",
                f"agents act only as themselves ({self.name})",
            )


def chessmaster_token(repo: Repo) -> str:
    return repo.token_path.read_text().strip()


def resolve(repo: Repo, token: str) -> Caller | None:
    """The caller owning `token`, or None. A removed agent's token stops working at once."""
    if not token:
        return None
    try:
        if hmac.compare_digest(token, chessmaster_token(repo)):
            return Caller(names.CHESSMASTER)
    except FileNotFoundError:
        return None
    try:
        entries = os.listdir(repo.agents_dir)
    except FileNotFoundError:
        return None
    for entry in entries:
        if entry.startswith("."):
            continue
        try:
            theirs = (repo.agents_dir / entry / "token").read_text().strip()
        except (FileNotFoundError, NotADirectoryError):
            continue
        if hmac.compare_digest(token, theirs):
            return Caller(entry)
    return None
