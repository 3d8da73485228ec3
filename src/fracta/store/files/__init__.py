"""The files backend: today's .fracta/ format, the default (local mode). Plain files any process
may read at any time; every write through fracta.atomic (atomic replace under a lock, Maildir
delivery for messages). See .fracta.example/ for the format."""

from __future__ import annotations

from collections.abc import Callable

from ... import atomic
from ...errors import CorruptRecord
from ...repo import Repo
from ..base import AgentStore, EventStore, MailStore, MissionStore, TokenStore
from .agents import FileAgents
from .events import FileEvents
from .mailbox import FileMail
from .missions import FileMissions
from .tokens import FileTokens


class FileStore:
    backend = "files"

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self.agents: AgentStore = FileAgents(repo)
        self.mail: MailStore = FileMail(repo)
        self.missions: MissionStore = FileMissions(repo)
        self.events: EventStore = FileEvents(repo)
        self.tokens: TokenStore = FileTokens(repo)

    def record_action(self, action: str, at: str) -> None:
        self.repo.chessmaster_dir.mkdir(exist_ok=True)
        # A note for progress.md, not a record: atomic, but not worth an fsync on every spawn and merge.
        path = self.repo.chessmaster_dir / "last_action.json"
        atomic.write_json(path, {"schema": 1, "at": at, "action": action}, durable=False)

    def last_action(self) -> tuple[str, str] | None:
        try:
            data = atomic.read_json(self.repo.chessmaster_dir / "last_action.json")
        except (FileNotFoundError, CorruptRecord):  # a bad snapshot must never stop progress.md
            return None
        return str(data.get("action", "")), str(data.get("at", ""))

    def subscribe(self, listener: Callable[[str], None]) -> Callable[[], None] | None:
        return None  # the control plane watches missions/ itself (watchdog); readers poll the files

    def supervise(self, owner: str, lease: float) -> frozenset[str] | None:
        return None  # one control plane per .fracta/ (control.lock) supervises every agent

    def adopt(self, owner: str, name: str, lease: float) -> None:
        return None

    def close(self) -> None:
        return None
