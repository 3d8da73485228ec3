"""fracta's own MCP tools: each one checks the caller's identity, calls one core function, returns its JSON.

The shapes are those of fracta/results.py, as for `--json` and the REST API. The descriptions are
written for the AI agents that read them: they teach the inbox rhythm.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import lifecycle, liveness, mailbox, messaging, names, peek, project, results
from ..errors import InvalidInput
from ..identity import Caller
from ..repo import Repo

RHYTHM = (
    "The inbox rhythm: call fracta_inbox at the start of every iteration and again after every commit; "
    "set your intent with fracta_set_intent when you start and whenever your focus changes; when your "
    "task is done, commit and tell the chessmaster with fracta_send (to='chessmaster')."
)


@dataclass(frozen=True)
class Call:
    """One tool call: who calls, with which arguments, against which repo."""

    repo: Repo
    caller: Caller
    tool: str
    args: dict[str, Any]
    backends: Sequence[Any] = ()  # the proxied backends' tools (mcp.types.Tool), for discovery
    kick: Callable[[], None] = field(default=lambda: None)  # wakes the spawner after a spawn

    def text(self, key: str, default: str | None = None) -> str:
        value = self.args.get(key, default)
        if value is None:
            raise InvalidInput(f"{self.tool} needs the argument {key!r}", f"pass {key} as a string")
        if not isinstance(value, str):
            raise InvalidInput(f"the argument {key!r} of {self.tool} must be a string, not {type(value).__name__}")
        return value

    def optional(self, key: str) -> str | None:
        return self.text(key) if self.args.get(key) is not None else None

    def flag(self, key: str) -> bool:
        value = self.args.get(key, False)
        if not isinstance(value, bool):
            raise InvalidInput(f"the argument {key!r} of {self.tool} must be true or false")
        return value

    def strings(self, key: str) -> list[str]:
        value = self.args.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidInput(f"the argument {key!r} of {self.tool} must be a list of strings")
        return value


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    params: dict[str, dict[str, Any]]
    required: tuple[str, ...]
    run: Callable[[Call], dict[str, Any]]
    chessmaster_only: bool = False
    read_only: bool = False
    destructive: bool = False
    speaks_as_self: bool = False  # takes the caller's own name: its description tells an agent its name

    def input_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": self.params,
            "required": list(self.required),
            "additionalProperties": False,
        }

    def describe(self, caller: Caller) -> str:
        if self.speaks_as_self and not caller.is_chessmaster:
            return f"{self.description} You are {caller.name!r}."
        return self.description

    def invoke(self, call: Call) -> dict[str, Any]:
        """Check identity and arguments, then run; every refusal is a FractaError with a hint."""
        if self.chessmaster_only:
            call.caller.require_chessmaster(f"use {self.name}")
        unknown = sorted(set(call.args) - set(self.params))
        if unknown:
            takes = ", ".join(self.params) or "no arguments"
            raise InvalidInput(f"{self.name} does not take {', '.join(map(repr, unknown))}", f"it takes: {takes}")
        return self.run(call)


def visible(caller: Caller) -> list[Tool]:
    """The fracta tools this caller may use: agents do not see the chessmaster's."""
    return [t for t in TOOLS if caller.is_chessmaster or not t.chessmaster_only]


def get(name: str) -> Tool | None:
    return next((t for t in TOOLS if t.name == name), None)


# --- the faces ------------------------------------------------------------------------------------


def _send(call: Call) -> dict[str, Any]:
    sender = call.text("from")
    call.caller.require_self(sender, "send messages")
    done = messaging.send(call.repo, sender, call.text("to"), call.text("message"), kick=call.kick, **_once(call))
    return results.sent(done.sent)


def _once(call: Call) -> dict[str, Any]:
    """How a retried send is stored once: by its idempotency_key, else as an identical call (RETRIES)."""
    key = call.optional("idempotency_key")
    return {"key": key} if key is not None else {"same_call_within": mailbox.SAME_CALL_WINDOW}


def _inbox(call: Call) -> dict[str, Any]:
    name = call.text("name")
    call.caller.require_self(name, "read the inbox")
    return results.inbox(name, mailbox.read(call.repo, name, ack=call.optional("ack")))


def _set_intent(call: Call) -> dict[str, Any]:
    name = call.text("name")
    call.caller.require_self(name, "set the intent")
    return results.intent(project.set_intent(call.repo, name, call.text("intent")))


def _list(call: Call) -> dict[str, Any]:
    found, problems = liveness.checked(call.repo)
    return results.agent_list(call.repo, found, problems)


def _peek(call: Call) -> dict[str, Any]:
    return peek.peek(call.repo, call.text("name")).to_dict()


def _spawn(call: Call) -> dict[str, Any]:
    workspace = call.optional("workspace")
    req = lifecycle.SpawnRequest(
        name=call.text("name"),
        runtime=call.text("runtime", "command"),
        prompt=call.optional("prompt"),
        args=tuple(call.strings("args")),
        base=call.optional("base"),
        workspace=Path(workspace) if workspace else None,
    )
    agent = lifecycle.spawn(call.repo, req)
    call.kick()
    return {"version": results.VERSION, "agent": results.agent_view(call.repo, agent)}


def _merge(call: Call) -> dict[str, Any]:
    from .. import merge

    return results.merged(merge.merge(call.repo, call.text("name"), notify=call.flag("notify"), cwd=call.repo.root))


def _kill(call: Call) -> dict[str, Any]:
    return results.killed(lifecycle.kill(call.repo, call.text("name"), force=call.flag("force")))


def _say(call: Call) -> dict[str, Any]:
    done = messaging.send(
        call.repo, names.CHESSMASTER, call.text("to"), call.text("message"), kick=call.kick, **_once(call)
    )
    return results.sent(done.sent)


def _tools(call: Call) -> dict[str, Any]:
    from . import discovery

    query = call.text("query", "")
    mine = [(t.name, t.describe(call.caller), t.input_schema()) for t in visible(call.caller)]
    return discovery.found(query, discovery.search(discovery.catalog(mine, call.backends), query))


_STR = {"type": "string"}
_NAME = {"type": "string", "description": "an agent name (or 'chessmaster')"}
RETRIES = (
    "If a call fails without a result (a network error, fracta restarting), make the identical call again: "
    "the message is stored once. A call is taken as a retry when it has the same idempotency_key as an "
    "earlier one of yours to the same recipient, or, without idempotency_key, the same `to` and the same "
    "message text (byte for byte) as one you made less than 10 minutes before; the result then lists the "
    "earlier message under `duplicates`. So to send the very same text to the same recipient again on "
    "purpose within 10 minutes, give each send its own idempotency_key."
)
_KEY = {
    "type": "string",
    "description": "optional: any string unique to this message (e.g. a UUID); repeat it only to retry this send",
}

TOOLS: tuple[Tool, ...] = (
    Tool(
        "fracta_inbox",
        "Read your unread messages. Instructions, replies, dependency notices and 'main updated to <sha>; "
        "run git merge main' arrive here. " + RHYTHM + " Pass your own name: you may read only your own inbox. "
        "Each result has a `receipt`: pass it as `ack` in your next fracta_inbox call, which tells fracta you "
        "got those messages (on your first call, pass no ack). If a call fails without a result, call again "
        "with the same `ack` as that call: you get the messages it would have returned. So you see each "
        "message once. Messages never acknowledged are handed out again after a timeout (5 minutes by default).",
        {
            "name": {"type": "string", "description": "your own agent name"},
            "ack": {"type": "string", "description": "the `receipt` of your previous fracta_inbox result"},
        },
        ("name",),
        _inbox,
        speaks_as_self=True,
    ),
    Tool(
        "fracta_send",
        "Send a message to another agent's inbox, to 'chessmaster', or to '*' (every other agent). "
        "`from` must be your own name. The message is stored durably before this returns. Use it for "
        "handoffs: when you finish a piece another agent waits on, commit it and tell that agent; when "
        "your task is done, commit and tell the chessmaster what you did and on which branch. " + RETRIES,
        {
            "from": {"type": "string", "description": "your own agent name"},
            "to": {"type": "string", "description": "an agent name, 'chessmaster', or '*' for every agent"},
            "message": {"type": "string", "description": "the message text (at most 64 KiB)"},
            "idempotency_key": _KEY,
        },
        ("from", "to", "message"),
        _send,
        speaks_as_self=True,
    ),
    Tool(
        "fracta_set_intent",
        "Set your intent: one line saying what you are working on right now (at most 200 characters). "
        "Set it when you start and whenever your focus changes, so the chessmaster and your peers see "
        "who is doing what (fracta_list). You may set only your own intent.",
        {"name": {"type": "string", "description": "your own agent name"}, "intent": _STR},
        ("name", "intent"),
        _set_intent,
        speaks_as_self=True,
    ),
    Tool(
        "fracta_list",
        "Every agent at a glance: status, intent, branch, unread messages and last activity. Read-only; "
        "use it to see who works on what before you message or peek at someone.",
        {},
        (),
        _list,
        read_only=True,
    ),
    Tool(
        "fracta_peek",
        "Read an agent's recent output without disturbing it: no message is delivered, no session is "
        "interrupted. Use it to check whether a dependency is done or what a peer found.",
        {"name": _NAME},
        ("name",),
        _peek,
        read_only=True,
    ),
    Tool(
        "fracta_spawn",
        "Chessmaster only. Start a new agent on a task in its own git worktree (branch feature/<name>), "
        "or in `workspace` (a folder) if given. runtime: 'command' (args is the command line) or an AI "
        "CLI adapter such as 'claude' (prompt is its task). Queued if max_agents are already running.",
        {
            "name": {"type": "string", "description": "the task name: lowercase letters, digits, dashes"},
            "runtime": {"type": "string", "description": "'command' (default) or an AI CLI adapter"},
            "prompt": {"type": "string", "description": "the task for an AI CLI agent"},
            "args": {"type": "array", "items": _STR, "description": "the command line for runtime 'command'"},
            "base": {"type": "string", "description": "start the branch from this ref (default: HEAD)"},
            "workspace": {"type": "string", "description": "a folder to work in instead of a git worktree"},
        },
        ("name",),
        _spawn,
        chessmaster_only=True,
    ),
    Tool(
        "fracta_merge",
        "Chessmaster only. Merge an agent's branch (feature/<name>) into the current branch of the main "
        "worktree; on a conflict nothing changes and the conflicting files are listed. notify=true tells "
        "every other live agent 'main updated to <sha>; run git merge main'.",
        {"name": _NAME, "notify": {"type": "boolean", "default": False}},
        ("name",),
        _merge,
        chessmaster_only=True,
    ),
    Tool(
        "fracta_kill",
        "Chessmaster only. Stop an agent and remove its worktree and branch. Refused while it has "
        "unmerged commits or uncommitted changes, unless force=true (then the work is first saved under "
        "refs/fracta/archive/<name>/).",
        {"name": _NAME, "force": {"type": "boolean", "default": False}},
        ("name",),
        _kill,
        chessmaster_only=True,
        destructive=True,
    ),
    Tool(
        "fracta_say",
        "Chessmaster only. Send a message as the chessmaster to an agent, or to '*' for every agent. "
        "A running agent reads it at its next fracta_inbox. " + RETRIES,
        {"to": {"type": "string", "description": "an agent name, or '*'"}, "message": _STR, "idempotency_key": _KEY},
        ("to", "message"),
        _say,
        chessmaster_only=True,
    ),
    Tool(
        "fracta_tools",
        "List or search every tool you can use here, with its description and input schema: fracta's own "
        "and those proxied from backend MCP servers (named <server>__<tool>). `query` keeps the tools "
        "whose name or description contains all of its words; empty lists them all.",
        {"query": {"type": "string", "default": "", "description": "words to look for (optional)"}},
        (),
        _tools,
        read_only=True,
    ),
)
