"""The result models of reviewing an agent's work before acting on it (the web view's questions, also
asked over REST): its branch against the integration branch, a merge's preview, its messages both
ways; and the web view's one-time login link."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import Contract
from .shapes import MessageState, Stamp, Version


class Commit(Contract):
    """One commit."""

    sha: str = Field(description="its full sha")
    subject: str = Field(description="its subject line")
    author: str = Field(description="its author's name")
    at: str = Field(description="its author date, ISO 8601 with the author's offset")


class FileChange(Contract):
    """One file a branch changed."""

    path: str = Field(description="the file's path in the repository")
    added: int | None = Field(description="lines added; `null` for a binary file")
    removed: int | None = Field(description="lines removed; `null` for a binary file")


class BranchState(Contract):
    """An agent's branch against the integration branch: `GET /v1/agents/NAME/branch`."""

    version: Version
    agent: str = Field(description="the agent's name")
    branch: str | None = Field(description="its branch, `feature/<name>`; `null` when it has no git worktree")
    into: str | None = Field(
        description="the integration branch: the main worktree's current branch, which `merge` merges into "
        "(`null` on a detached HEAD: compared with HEAD)"
    )
    ahead: int = Field(description="commits on its branch that the integration branch does not have")
    behind: int = Field(description="commits on the integration branch that its branch does not have")
    merged: bool = Field(description="the integration branch contains its branch's tip: nothing is left to merge")
    last_commit: Commit | None = Field(description="its branch's tip; `null` when it has no branch")
    files: list[FileChange] = Field(description="the files its branch changed since it parted from `into`")
    diff: str = Field(description="`git diff INTO...BRANCH`: its branch's own changes (cut when `truncated`)")
    truncated: bool = Field(description="the diff was cut at 200,000 characters (`files` is whole)")
    uncommitted: list[str] = Field(
        description="files changed or untracked in its worktree, not committed (at most 200): "
        "what `kill` refuses to lose"
    )


class MergePreview(Contract):
    """What `fracta merge NAME` would do now, by the same checks, changing nothing:
    `GET /v1/agents/NAME/merge/preview`."""

    version: Version
    agent: str = Field(description="the agent's name")
    branch: str | None = Field(description="its branch; `null` when it has no git worktree (`would` is `refused`)")
    into: str | None = Field(description="the branch it would be merged into; `null` when unknown (refused)")
    would: Literal["merge", "fast-forward", "nothing", "conflict", "refused"] = Field(
        description="`merge` (a merge commit), `fast-forward`, `nothing` (already up to date), `conflict` "
        "(nothing would change: the files are in `conflicts`) or `refused` (why: `refused`)"
    )
    conflicts: list[str] = Field(description="with `conflict`: the files that would conflict")
    refused: str | None = Field(
        description="with `refused`: why merge would refuse (uncommitted changes in the main worktree, a merge "
        "in progress, a detached HEAD, untracked files it would overwrite, no git worktree)"
    )
    hint: str = Field(description='what to do about a conflict or a refusal; `""` otherwise')


class Messages(Contract):
    """An agent's messages both ways, with their delivery states, reading none:
    `GET /v1/agents/NAME/messages`."""

    version: Version
    agent: str = Field(description="the agent (or `chessmaster`)")
    received: list[MessageState] = Field(description="the messages in its inbox (the latest 200), oldest first")
    sent: list[MessageState] = Field(
        description="the messages it sent still in an inbox (the latest 200), oldest first"
    )


class UiLogin(Contract):
    """A one-time link into the web view: `fracta ui --json`, `POST /v1/ui/login`."""

    version: Version
    url: str = Field(
        description="the web view's address with a one-time `token`: opened once, it becomes a session cookie"
    )
    expires_at: Stamp = Field(description="the link works until then (timestamp), and only once")
