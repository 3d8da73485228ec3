"""The request models: every input of an operation (path, query and body on REST; the arguments on MCP)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from .base import RECEIPT_PATTERN, Contract, name_field

if TYPE_CHECKING:
    from ..lifecycle import SpawnRequest

MAX_EVENT_OFFSET = 2**40  # the largest event-log cursor accepted: past any real log, within every file system's seek
MAX_OUTPUT_OFFSET = 2**62


class NoInput(Contract):
    """An operation that takes nothing."""


class AgentName(Contract):
    name: str = name_field("an agent name")


class Spawn(Contract):
    name: str = name_field("the task name: lowercase letters, digits, dashes")
    runtime: str = Field("command", description="'command' (default) or an AI CLI adapter")
    prompt: str | None = Field(None, description="the task for an AI CLI agent")
    args: list[str] = Field(default_factory=list, description="the command line for runtime 'command'")
    base: str | None = Field(None, description="start the branch from this ref (default: HEAD)")
    workspace: str | None = Field(None, description="a folder to work in instead of a git worktree")

    def request(self) -> SpawnRequest:
        """The core's spawn request (the same for the REST route and the MCP tool)."""
        from pathlib import Path

        from ..lifecycle import SpawnRequest

        workspace = Path(self.workspace) if self.workspace else None
        return SpawnRequest(
            name=self.name,
            runtime=self.runtime,
            prompt=self.prompt,
            args=tuple(self.args),
            base=self.base,
            workspace=workspace,
        )


class Merge(Contract):
    name: str = name_field("the agent whose branch feature/<name> is merged")
    notify: bool = Field(False, description="tell every other live agent 'main updated to <sha>; run git merge main'")


class Kill(Contract):
    name: str = name_field("the agent to stop and remove")
    force: bool = Field(
        False, description="remove it even with unmerged or uncommitted work (saved under refs/fracta/archive/ first)"
    )


class SentBy(Contract):
    name: str = name_field("your own agent name (or 'chessmaster'): whose sent messages to follow")


class ReadInbox(Contract):
    name: str = name_field("your own agent name (or 'chessmaster')")
    all: bool = Field(False, description="also hand out the messages read before")
    ack: str | None = Field(
        None,
        json_schema_extra={"pattern": RECEIPT_PATTERN},
        description="the `receipt` of your previous read: acknowledges what it handed out",
    )


class Acknowledge(Contract):
    name: str = name_field("your own agent name (or 'chessmaster')")
    receipt: str = Field(
        json_schema_extra={"pattern": RECEIPT_PATTERN}, description="the `receipt` of the read whose messages you got"
    )


class SetIntent(Contract):
    name: str = name_field("your own agent name")
    intent: str = Field(description="one line: what you are working on now (at most 200 characters)")


class ReadOutput(Contract):
    name: str = name_field("an agent name (or 'chessmaster')")
    n: int = Field(20, ge=0, le=10_000, description="how many of the latest events")
    since: int | None = Field(
        None, ge=0, le=MAX_OUTPUT_OFFSET, description="instead of the latest: every event from this output offset"
    )


class Say(Contract):
    to: str = name_field("an agent name, 'chessmaster', or '*' for every agent", recipient=True)
    message: str = Field(description="the message text (at most 64 KiB)")
    subject: str | None = Field(None, description="optional one-line subject")
    reply_to: str | None = Field(None, description="optional id of the message this one answers")
    idempotency_key: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="optional: any string unique to this message (e.g. a UUID); repeat it only to retry this send",
    )


class Send(Say):
    sender: str | None = name_field("your own agent name (default: the caller's)", default=None, alias="from")


class FindTools(Contract):
    query: str = Field("", description="words to look for (optional); empty lists every tool")


class ReadEvents(Contract):
    since: int = Field(0, ge=0, le=MAX_EVENT_OFFSET, description="the byte offset to read from (`next` of a page)")
    limit: int = Field(1000, ge=1, le=10_000, description="at most this many records")
    named: bool = Field(
        True,
        description="a stream's events carry `event:` their name; false: none does, so that a browser's "
        "EventSource hands every one to `onmessage` (the name stays in the record)",
    )
