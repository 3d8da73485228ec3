"""The result models: what every operation answers, on every face (docs/json.md's tables come from here)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StringConstraints

from ..agents import Status
from .base import Contract

VERSION = 1  # fracta.results.VERSION; tests/test_contracts.py checks that the two agree

# A UTC timestamp, ISO 8601 with milliseconds and a Z.
Stamp = Annotated[str, StringConstraints(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")]
Version = Annotated[Literal[1], Field(description="the shape's version")]


class Problem(Contract):
    """A record that could not be read; the others are still listed."""

    path: str = Field(description="absolute path of the file that could not be read")
    error: str = Field(description="what is wrong with it, e.g. `corrupt record <path>: empty file`")


class Usage(Contract):
    """Tokens and cost, over every run."""

    input: int = Field(description="input tokens not read from a cache")
    output: int = Field(description="output tokens (reasoning included)")
    cache_read: int = Field(description="input tokens read from the prompt cache")
    cache_write: int = Field(description="input tokens written to the prompt cache")
    total: int = Field(description="all four added up (what `agents.budget` tokens count)")
    cost_usd: float | None = Field(description="the cost in USD; `null` when unknown (no price for the model)")
    estimated: bool = Field(description="some of the cost came from fracta.yaml's `pricing`, not from the runtime")


class AgentUsage(Usage):
    model: str | None = Field(description="the model last reported (or configured), when known")


State = Literal["needs-you", "working", "stalled", "idle", "done", "failed"]


class Agent(Contract):
    """An agent's record (`.fracta/agents/<name>/agent.json` without its internal `schema` number), plus
    `unread`, `last_activity` and `waiting`, computed when listing."""

    name: str = Field(
        description="the agent's name: lowercase letters, digits and single dashes, at most 40 characters"
    )
    runtime: str = Field(
        description="what runs it: `manual` for an agent that joined (run by hand), else the runtime adapter "
        "(`claude`, `codex`, `opencode`, `command`)"
    )
    status: Status = Field(
        description="one of `queued`, `starting`, `running`, `idle`, `done`, `failed`, `killed`, `lost` (see below)"
    )
    kind: Literal["joined", "spawned"] = Field(
        description="`joined` (registered with `fracta join`, run by hand) or `spawned` (started by fracta)"
    )
    intent: str = Field(description='its one-line intent (at most 200 characters); `""` when none is set')
    created_at: Stamp = Field(description="when the record was created (timestamp)")
    updated_at: Stamp = Field(description="when the record last changed (timestamp)")
    workspace: str | None = Field(
        description="absolute path of the folder it works in (for `join`: where the command ran)"
    )
    workspace_kind: Literal["git", "directory"] | None = Field(
        description="`git` (a worktree, mergeable) or `directory`; `null` for a joined agent"
    )
    branch: str | None = Field(description="its git branch, e.g. `feature/<name>`; `null` if it has none")
    base: str | None = Field(description="the branch or commit its branch started from")
    command: list[str] = Field(description="the argv fracta runs for it; `[]` for a joined agent")
    pid: int | None = Field(description="the process id of its runner, while fracta runs it")
    pid_start: int | None = Field(
        description="that process's start time in clock ticks since boot (tells a reused pid apart)"
    )
    session_id: str | None = Field(description="the runtime's session id, used to resume it with a new prompt")
    exit_code: int | None = Field(description="the runtime's exit status once it ended")
    started_at: Stamp | None = Field(description="when its process started (timestamp)")
    finished_at: Stamp | None = Field(description="when its process ended (timestamp)")
    last_commit: str | None = Field(description="full sha of its last commit seen by fracta")
    last_commit_subject: str | None = Field(description="the subject line of that commit")
    tokens_used: int | None = Field(description="tokens the runtime reported using, when it reports them")
    error: str | None = Field(
        description="why it failed or was lost, in one line: the runtime's last error event, else its last stderr "
        "line (`exit code 1: ...`); for an `idle` agent, why a wake could not start (`could not wake it: ...`); "
        "for a `lost` one, what vanished and whether fracta stopped what of it still ran; null after a clean run"
    )
    unread: int = Field(description="how many messages wait unread in its inbox")
    last_activity: Stamp | None = Field(
        description="its last activity (a message sent or read, a record change), timestamp; `null` if unknown"
    )
    waiting: str | None = Field(
        description="for a `queued` agent, its place in the queue and what it waits for, e.g. `2nd in queue, "
        "waiting for a slot: 3/3 running`; `null` otherwise"
    )
    usage: AgentUsage | None = Field(description="tokens and cost of all its runs (null in the record before any)")
    stopped: str | None = Field(
        description="why fracta stopped it at the end of a turn (its `agents.budget` reached); `null`: it may run"
    )
    state: State = Field(
        description="what it needs: `needs-you` (asked a question, finished and reported, failed, or stopped at "
        "its budget), `working`, `stalled` (runs, but printed nothing for `agents.stall_after` seconds), `idle`, "
        "`done`, `failed` (and the chessmaster acted since)"
    )
    state_reason: str = Field(description="why it is in that state, in one line")


class Totals(Contract):
    """The fleet at a glance."""

    agents: int = Field(description="how many agents are listed")
    states: dict[str, int] = Field(description="how many agents are in each state (every state, 0 included)")
    usage: Usage = Field(description="tokens and cost of every listed agent together")
    queued: int = Field(description="agents waiting in the queue")


class AgentList(Contract):
    """Every agent: `fracta list --json`, `GET /v1/agents`, `fracta_list`."""

    version: Version
    agents: list[Agent] = Field(description="every readable agent, sorted by creation time, then name")
    problems: list[Problem] = Field(description="agent records that could not be read; the others are still listed")
    totals: Totals = Field(description="the fleet at a glance")


class OneAgent(Contract):
    """One agent: `fracta spawn --json`, `GET /v1/agents/NAME`, `POST /v1/agents`, `fracta_spawn`."""

    version: Version
    agent: Agent = Field(description="the agent")


class Message(Contract):
    """One message, as stored in an inbox."""

    id: str = Field(
        description="unique id; sorting ids sorts messages by send time (`<ns since epoch>.<pid>.<seq>.<random>`; "
        "treat it as opaque)"
    )
    sender: str = Field(alias="from", description="the sender: an agent name or `chessmaster`")
    to: str = Field(
        description="the recipient: an agent name or `chessmaster` (a broadcast is one message per recipient)"
    )
    sent_at: Stamp = Field(description="when it was sent (timestamp)")
    subject: str | None = Field(description="optional one-line subject")
    reply_to: str | None = Field(description="optional id of the message this one answers")
    body: str = Field(description="the text, at most `mailbox.max_message_bytes` bytes of UTF-8 (64 KiB by default)")
    read: bool = Field(
        description="`false` for a message read just now for the first time, `true` for one read before "
        "(only with `--all`)"
    )


class Inbox(Contract):
    """A read of an inbox: `fracta inbox --json`, `POST /v1/agents/NAME/inbox`, `fracta_inbox`."""

    version: Version
    agent: str = Field(description="whose inbox was read (an agent name or `chessmaster`)")
    messages: list[Message] = Field(
        description="the unread messages, oldest first; with `--all`, first the messages read before "
        "(`read: true`), then the newly read ones (`read: false`)"
    )
    problems: list[Problem] = Field(
        description="message files that could not be read; they stay where they are and hide no other message"
    )
    receipt: str = Field(
        description="names this hand-out (`<16 hex digits>-<time in ns>`; treat it as opaque): pass it as `ack` "
        "to the next read, which acknowledges exactly the messages of this document. A read repeated with the "
        "same `ack` (its result was lost) gets those messages again, with a new receipt that covers them all"
    )


class Acknowledged(Contract):
    """An acknowledgement: `POST /v1/agents/NAME/inbox/ack`."""

    version: Version
    agent: str = Field(description="whose inbox it was")
    acknowledged: int = Field(description="how many messages the receipt acknowledged")


class Sent(Contract):
    """A send: `fracta say --json`, `POST /v1/messages`, `fracta_send`, `fracta_say`."""

    version: Version
    sent: list[Message] = Field(
        description="one message per recipient, each already durable; `TO` = `*` sends to every agent but the "
        "sender (`[]` if there is none); `read` is `false`"
    )
    duplicates: list[str] = Field(
        description="the ids of the messages in `sent` that an earlier send with the same idempotency key (or, "
        "through MCP, an identical call) had stored: this send was its retry and stored nothing new; `[]` otherwise"
    )
    undeliverable: dict[str, str] = Field(
        description="recipients that will never read it (killed, failed, done without a session, stopped at "
        "their budget) and why; the message is stored all the same. `{}` normally"
    )


class MessageState(Contract):
    """Where one sent message stands."""

    id: str = Field(description="the message's id")
    sender: str = Field(description="who sent it")
    to: str = Field(description="its recipient")
    sent_at: Stamp = Field(description="when it was sent")
    subject: str | None = Field(description="its subject")
    state: Literal["stored", "handed", "read", "undeliverable"] = Field(
        description="`stored` in the inbox, `handed` to its reader (not yet acknowledged), `read`, or "
        "`undeliverable` (its recipient will never read it)"
    )
    at: Stamp | None = Field(description="handed: when it was handed out; read: when its reading was confirmed")
    wake: str | None = Field(description="for an idle recipient: the wake started for it and how it ended")
    alert: str | None = Field(
        description="set when a running recipient left it unread past `mailbox.unread_alert` (the control plane "
        "then records a `message.unread` event for it, once)"
    )
    reason: str = Field(description="its story in one line")


class SentStates(Contract):
    """What became of a sender's messages: `fracta inbox --sent --json`, `GET /v1/messages/sent`, `fracta_sent`."""

    version: Version
    sender: str = Field(description="whose messages these are")
    messages: list[MessageState] = Field(description="every message of theirs still in an inbox, oldest first")


class Intent(Contract):
    """An agent's intent: `fracta intent --json`, `GET`/`PUT /v1/agents/NAME/intent`, `fracta_set_intent`."""

    version: Version
    agent: str = Field(description="the agent's name")
    intent: str = Field(description='its one-line intent; `""` when none is set')


class Joined(Contract):
    """A joined agent: `fracta join --json`."""

    version: Version
    agent: str = Field(description="the new agent's name")
    env: dict[str, str] = Field(description="the environment the agent's process needs (below)")


class SavedWork(Contract):
    """Where `kill --force` saved work that existed nowhere else."""

    ref: str = Field(
        description="the ref holding it, under `refs/fracta/archive/<name>/`; for a directory workspace, "
        "the folder it was moved to, `<workspaces.root>/.archive/<name>/<time>`"
    )
    commit: str = Field(
        description="the commit that ref points to; for a directory workspace, its HEAD "
        "(empty if it is no git repository)"
    )
    restore: str = Field(description="the commands that bring the work back")


class Killed(Contract):
    """A kill: `fracta kill --json`, `DELETE /v1/agents/NAME`, `fracta_kill`."""

    version: Version
    agent: str = Field(description="the agent's name")
    stopped: bool = Field(description="a process of it was running and was stopped")
    saved: SavedWork | None = Field(description="with `--force`, where its unsaved work was kept; `null` otherwise")


class Merged(Contract):
    """A merge: `fracta merge --json`, `POST /v1/agents/NAME/merge`, `fracta_merge`."""

    version: Version
    agent: str = Field(description="the agent whose branch was merged")
    branch: str = Field(description="its branch, `feature/<name>`")
    into: str = Field(description="the branch of the main worktree it was merged into")
    sha: str = Field(description="the new head of `into`")
    previous: str | None = Field(description="the head of `into` before the merge")
    fast_forward: bool = Field(description="the merge was a fast-forward")
    already_up_to_date: bool = Field(description="there was nothing to merge")
    notified: list[str] = Field(description="the agents told that main was updated (with `--notify`)")


class OutputEvent(Contract):
    """One readable event of an agent's output."""

    kind: str = Field(description="`run`, `text`, `tool_call`, `tool_result`, `usage`, `session`, `error` or `line`")
    text: str = Field(description="the event as one readable line")
    ts: str | None = Field(description="when it happened, as the runtime reported it; `null` if unknown")
    data: dict[str, Any] = Field(description="the event's details, by kind (e.g. `session_id`, `input_tokens`)")


class Peek(Contract):
    """Recent output: `fracta peek --json`, `GET /v1/agents/NAME/peek`, `fracta_peek`."""

    version: Version
    agent: str = Field(description="the agent's name")
    status: Status = Field(description="its status")
    offset: int = Field(description="the byte offset of its output to continue from (`since`)")
    events: list[OutputEvent] = Field(description="its recent output, oldest first")


class Health(Contract):
    """`GET /v1/health`."""

    version: Version
    ok: Literal[True] = Field(description="always `true`: the control plane answers")
    root: str = Field(description="the repository it serves")


class Event(Contract):
    """One record of `.fracta/events.jsonl`, with the byte offset it starts at; other keys vary by event."""

    model_config = ConfigDict(extra="allow")

    v: int = Field(description="the record's schema number")
    event: str = Field(description="what happened")
    offset: int = Field(description="the byte offset the record starts at")


class EventPage(Contract):
    """A page of the event log: `GET /v1/events`."""

    version: Version
    events: list[Event] = Field(description="the records from `since`, oldest first")
    next: int = Field(description="the byte offset to ask for next (`since`)")


class ToolEntry(Contract):
    """A tool an MCP caller can use."""

    name: str = Field(description="its name (a proxied tool is `<server>__<tool>`)")
    source: str = Field(description="`fracta`, or the backend MCP server that serves it")
    description: str = Field(description="what it does")
    input_schema: dict[str, Any] = Field(description="its input schema")


class ToolsFound(Contract):
    """`fracta_tools`: the tools that match a query."""

    version: Version
    query: str = Field(description="the words looked for")
    count: int = Field(description="how many tools matched")
    tools: list[ToolEntry] = Field(description="the matching tools")


class Check(Contract):
    """One check of `fracta doctor`."""

    area: str = Field(
        description="`git`, `fracta`, `config`, `environment`, `runtime`, `credentials`, `control_plane` or `gateway`"
    )
    name: str = Field(
        description="what was checked, e.g. `git`, `claude`, `profile bedrock`, `claude credentials`, "
        "`spawn environment`, `provider variables`, `PATH`, `control plane`"
    )
    status: Literal["ok", "warn", "fail", "skip"] = Field(description="`ok`, `warn`, `fail` or `skip`")
    detail: str = Field(description="what was found; never a secret")
    fix: str | None = Field(description="what to do")


class Searched(Contract):
    """The environment the spawn-related checks of `fracta doctor` used."""

    of: Literal["control_plane", "caller"] = Field(
        description="`control_plane` when one runs (its PATH and variable names as control.json records them); "
        "else `caller`"
    )
    path: list[str] = Field(description="the PATH searched, folder by folder")


class Doctor(Contract):
    """`fracta doctor --json`."""

    version: Version
    ok: bool = Field(description="no check failed; the command exits 0 when true and 1 otherwise")
    checks: list[Check] = Field(description="every check, in order")
    searched: Searched | None = Field(
        description="the environment the spawn-related checks used; `null` when no repository was found"
    )


class ErrorDetail(Contract):
    """What went wrong."""

    type: str = Field(
        description="the error class, e.g. `NotInitialized`, `InvalidName`, `InvalidInput`, `AgentNotFound`, "
        "`AgentExists`, `Refused`, `Forbidden`, `CorruptRecord`, `LockTimeout`, `GitError`, `MergeConflict`"
    )
    message: str = Field(description="what is wrong")
    hint: str = Field(description='what to do about it; `""` when there is nothing to add')


class Error(Contract):
    """An error: the HTTP API's 4xx and 5xx bodies, an MCP tool error's structured content."""

    version: Version
    error: ErrorDetail = Field(description="the error")
