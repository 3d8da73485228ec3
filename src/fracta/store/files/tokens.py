"""Tokens in local mode: .fracta/token for the chessmaster, agents/<name>/token for each agent, 0600."""

from __future__ import annotations

import hmac
import os

from ... import names
from ...repo import Repo


class FileTokens:
    def __init__(self, repo: Repo) -> None:
        self.repo = repo

    def chessmaster(self) -> str:
        return self.repo.token_path.read_text().strip()

    def agent(self, name: str) -> str:
        return self.repo.agent_file(name, "token").read_text().strip()

    def resolve(self, token: str) -> str | None:
        if not token:
            return None
        try:
            if hmac.compare_digest(token, self.chessmaster()):
                return names.CHESSMASTER
        except FileNotFoundError:
            return None
        try:
            entries = os.listdir(self.repo.agents_dir)
        except FileNotFoundError:
            return None
        for entry in entries:
            if entry.startswith("."):
                continue
            try:
                theirs = (self.repo.agents_dir / entry / "token").read_text().strip()
            except (FileNotFoundError, NotADirectoryError):
                continue
            if hmac.compare_digest(token, theirs):
                return entry
        return None
