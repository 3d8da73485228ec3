"""The records every store keeps, whatever its backend: agents, messages, missions, events.

Plain frozen dataclasses with no I/O: the core passes them to a store (fracta.store) and gets
them back; how a backend lays them out (files under .fracta/, rows in PostgreSQL) is its own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from .errors import CorruptRecord

SCHEMA = 1


class Status(StrEnum):
    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    IDLE = "idle"
    DONE = "done"
    FAILED = "failed"
    KILLED = "killed"
    LOST = "lost"


LIVE = frozenset({Status.QUEUED, Status.STARTING, Status.RUNNING, Status.IDLE})
FINISHED = frozenset({Status.DONE, Status.FAILED, Status.KILLED, Status.LOST})


@dataclass(frozen=True)
class Agent:
    """An agent's record as stored in agents/<name>/agent.json."""

    name: str
    runtime: str
    status: Status
    created_at: str
    updated_at: str
    intent: str = ""
    kind: str = "spawned"  # "spawned" by fracta, or "joined" (run by hand)
    workspace: str | None = None
    workspace_kind: str | None = None  # "git" or "directory"
    branch: str | None = None
    base: str | None = None
    command: list[str] = field(default_factory=list)
    pid: int | None = None
    pid_start: int | None = None  # process start time in clock ticks since boot, to detect pid reuse
    session_id: str | None = None
    exit_code: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    last_commit: str | None = None
    last_commit_subject: str | None = None
    tokens_used: int | None = None
    error: str | None = None
    usage: dict[str, Any] | None = None  # fracta.usage.Usage.to_dict(): tokens by kind and cost, over all runs
    stopped: str | None = None  # why fracta stopped waking it (its budget reached); None: it may run

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["status"] = self.status.value
        data["schema"] = SCHEMA
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Path) -> Agent:
        schema = data.get("schema")
        if schema != SCHEMA:
            raise CorruptRecord(path, f"schema version {schema!r}, this fracta reads version {SCHEMA}")
        known = {f.name for f in dataclasses.fields(cls)}
        try:
            values = {k: v for k, v in data.items() if k in known}
            values["status"] = Status(values["status"])
            return cls(**values)
        except (KeyError, ValueError, TypeError) as exc:
            raise CorruptRecord(path, f"missing or invalid field ({exc})") from None

    @property
    def live(self) -> bool:
        return self.status in LIVE


@dataclass(frozen=True)
class Message:
    id: str
    sender: str
    to: str
    sent_at: str
    body: str
    subject: str | None = None
    reply_to: str | None = None
    read: bool = False
    dedup_key: str | None = None  # sent with an idempotency key (or as a deduplicated call): stored once per key
    duplicate: bool = False  # stored by an earlier call with the same key, returned again to its retry

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "from": self.sender,
            "to": self.to,
            "sent_at": self.sent_at,
            "subject": self.subject,
            "reply_to": self.reply_to,
            "body": self.body,
            "read": self.read,
        }


@dataclass(frozen=True)
class Delivery:
    """Where a message stands in its recipient's inbox (MailStore.listing)."""

    message: Message
    state: str  # "stored": not yet handed to its reader; "handed": handed, not yet acknowledged; "read"
    at_ns: int | None = None  # handed: when it was handed out; read: when its reading was confirmed
    alerted: bool = False  # flagged as left unread too long (MailStore.flag_unread)


@dataclass(frozen=True)
class Inbox:
    messages: list[Message]
    problems: list[CorruptRecord]
    receipt: str  # acknowledges these messages: pass it as `ack` to the next read, or to acknowledge()


@dataclass(frozen=True)
class Mission:
    """A queued spawn or wake. `id` is the store's (a file name, a row id); FIFO by `queued_ns`."""

    name: str
    runtime: str
    prompt: str | None
    args: list[str] = field(default_factory=list)
    queued_ns: int = 0
    id: str = ""

    @property
    def filename(self) -> str:
        return f"{self.queued_ns:019d}-{self.name}.json"


@dataclass(frozen=True)
class Event:
    offset: int  # where the event starts: a cursor for readers that follow the log
    end: int  # just past it: where the next read starts (pass it as `since`)
    data: dict[str, Any]
