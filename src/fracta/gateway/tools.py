"""fracta's own MCP tools: each one checks the caller's identity, calls one core function, returns its JSON.

Each tool is an operation of fracta/contracts: its input schema is the operation's request model
(the same as the REST route's, whose path parameters are arguments here), its output schema the
result model (the same as the REST response and `--json`). The descriptions are written for the
AI agents that read them: they teach the inbox rhythm.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import delivery, lifecycle, liveness, mailbox, messaging, names, peek, project, results
from ..contracts import base as contracts
from ..contracts import graph as gr
from ..contracts import operations
from ..contracts import requests as rq
from ..contracts import strategies as st
from ..errors import GraphUnavailable
from ..identity import Caller
from ..repo import Repo

if TYPE_CHECKING:
    from ..graph.client import Graph

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
    graph: Graph | None = None  # the knowledge graph this gateway serves, if any

    def knowledge_graph(self) -> Graph:
        if self.graph is None:
            raise GraphUnavailable("this gateway serves no knowledge graph", "install fracta[graph] and restart it")
        return self.graph


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    run: Callable[[Call, Any], dict[str, Any]]  # given the call and its arguments as the request model
    chessmaster_only: bool = False
    read_only: bool = False
    destructive: bool = False
    speaks_as_self: bool = False  # takes the caller's own name: its description tells an agent its name
    needs_graph: bool = False  # listed only where the gateway serves a knowledge graph

    @property
    def operation(self) -> operations.Operation:
        return operations.by_tool(self.name)

    def input_schema(self) -> dict[str, Any]:
        return operations.schema(self.operation.request)

    def output_schema(self) -> dict[str, Any] | None:
        result = self.operation.result
        return None if result is None else operations.schema(result)

    def describe(self, caller: Caller) -> str:
        if self.speaks_as_self and not caller.is_chessmaster:
            return f"{self.description} You are {caller.name!r}."
        return self.description

    def invoke(self, call: Call) -> dict[str, Any]:
        """Check identity and arguments, then run; every refusal is a FractaError with a hint."""
        if self.chessmaster_only:
            call.caller.require_chessmaster(f"use {self.name}")
        args = contracts.parse(self.operation.request, call.args, where=self.name, noun="argument")
        return self.run(call, args)


def visible(caller: Caller, graph: bool = False) -> list[Tool]:
    """The fracta tools this caller may use: agents do not see the chessmaster's, nobody sees the
    graph's where there is no graph."""
    return [t for t in TOOLS if (caller.is_chessmaster or not t.chessmaster_only) and (graph or not t.needs_graph)]


def get(name: str) -> Tool | None:
    return next((t for t in TOOLS if t.name == name), None)


# --- the faces ------------------------------------------------------------------------------------


def _send(call: Call, args: rq.Send) -> dict[str, Any]:
    sender = args.sender or call.caller.name
    call.caller.require_self(sender, "send messages")
    return _sent(call, sender, args)


def _say(call: Call, args: rq.Say) -> dict[str, Any]:
    return _sent(call, names.CHESSMASTER, args)


def _sent(call: Call, sender: str, args: rq.Say) -> dict[str, Any]:
    # A retried send is stored once: by its idempotency_key, else as an identical call (RETRIES).
    once: dict[str, Any] = {"key": args.idempotency_key}
    if args.idempotency_key is None:
        once = {"same_call_within": mailbox.SAME_CALL_WINDOW}
    done = messaging.send(
        call.repo, sender, args.to, args.message, subject=args.subject, reply_to=args.reply_to, kick=call.kick, **once
    )
    return results.sent(done.sent, done.undeliverable)


def _sent_states(call: Call, args: rq.SentBy) -> dict[str, Any]:
    call.caller.require_self(args.name, "follow the messages")
    return results.sent_states(args.name, delivery.sent(call.repo, args.name))


def _inbox(call: Call, args: rq.ReadInbox) -> dict[str, Any]:
    call.caller.require_self(args.name, "read the inbox")
    return results.inbox(args.name, mailbox.read(call.repo, args.name, include_read=args.all, ack=args.ack))


def _set_intent(call: Call, args: rq.SetIntent) -> dict[str, Any]:
    call.caller.require_self(args.name, "set the intent")
    return results.intent(project.set_intent(call.repo, args.name, args.intent))


def _list(call: Call, args: rq.NoInput) -> dict[str, Any]:
    found, problems = liveness.checked(call.repo)
    return results.agent_list(call.repo, found, problems)


def _peek(call: Call, args: rq.ReadOutput) -> dict[str, Any]:
    return peek.peek(call.repo, args.name, n=args.n, since=args.since).to_dict()


def _spawn(call: Call, args: rq.Spawn) -> dict[str, Any]:
    agent = lifecycle.spawn(call.repo, args.request())
    call.kick()
    return {"version": results.VERSION, "agent": results.agent_view(call.repo, agent)}


def _merge(call: Call, args: rq.Merge) -> dict[str, Any]:
    from .. import merge

    return results.merged(merge.merge(call.repo, args.name, notify=args.notify, cwd=call.repo.root))


def _kill(call: Call, args: rq.Kill) -> dict[str, Any]:
    return results.killed(lifecycle.kill(call.repo, args.name, force=args.force))


def _tools(call: Call, args: rq.FindTools) -> dict[str, Any]:
    from . import discovery

    mine = [(t.name, t.describe(call.caller), t.input_schema()) for t in visible(call.caller, call.graph is not None)]
    return discovery.found(args.query, discovery.search(discovery.catalog(mine, call.backends), args.query))


def _graph_query(call: Call, args: gr.GraphQuery) -> dict[str, Any]:
    from ..graph import ops

    return ops.query(call.knowledge_graph(), args.query, args.params, args.limit)


def _graph_upsert(call: Call, args: gr.GraphUpsert) -> dict[str, Any]:
    from ..graph import ops

    nodes = [n.node() for n in args.nodes]
    relationships = [r.relationship() for r in args.relationships]
    return ops.upsert(call.knowledge_graph(), nodes, relationships, by=call.caller.name)


def _graph_schema(call: Call, args: rq.NoInput) -> dict[str, Any]:
    from ..graph import ops

    return ops.schema(call.knowledge_graph())


def _graph_drop(call: Call, args: gr.GraphDrop) -> dict[str, Any]:
    from ..graph import ops

    return ops.drop(call.knowledge_graph(), confirm=args.confirm)


def _strategy_list(call: Call, args: rq.NoInput) -> dict[str, Any]:
    from ..strategies import client

    return client.list_strategies(call.repo)


def _strategy_describe(call: Call, args: st.StrategyName) -> dict[str, Any]:
    from ..strategies import client

    return client.describe(call.repo, args.name)


def _strategy_run(call: Call, args: st.StrategyRun) -> dict[str, Any]:
    from ..strategies import client

    return client.run(call.repo, args.name, args.params, by=call.caller.name)


RETRIES = (
    "If a call fails without a result (a network error, fracta restarting), make the identical call again: "
    "the message is stored once. A call is taken as a retry when it has the same idempotency_key as an "
    "earlier one of yours to the same recipient, or, without idempotency_key, the same `to` and the same "
    "message text (byte for byte) as one you made less than 10 minutes before; the result then lists the "
    "earlier message under `duplicates`. So to send the very same text to the same recipient again on "
    "purpose within 10 minutes, give each send its own idempotency_key."
)

TOOLS: tuple[Tool, ...] = (
    Tool(
        "fracta_inbox",
        "Read your unread messages. Instructions, replies, dependency notices and 'main updated to <sha>; "
        "run git merge main' arrive here. " + RHYTHM + " Pass your own name: you may read only your own inbox. "
        "Each result has a `receipt`: pass it as `ack` in your next fracta_inbox call, which tells fracta you "
        "got those messages (on your first call, pass no ack). If a call fails without a result, call again "
        "with the same `ack` as that call: you get the messages it would have returned. So you see each "
        "message once. Messages never acknowledged are handed out again after a timeout (5 minutes by default).",
        _inbox,
        speaks_as_self=True,
    ),
    Tool(
        "fracta_send",
        "Send a message to another agent's inbox, to 'chessmaster', or to '*' (every other agent). "
        "`from`, when given, must be your own name. The message is stored durably before this returns. Use it for "
        "handoffs: when you finish a piece another agent waits on, commit it and tell that agent; when "
        "your task is done, commit and tell the chessmaster what you did and on which branch. " + RETRIES,
        _send,
        speaks_as_self=True,
    ),
    Tool(
        "fracta_sent",
        "What became of the messages you sent: for each, `stored` (waiting in the recipient's inbox), `handed` "
        "(the recipient's read got it), `read` (and when), the wake started for an idle recipient and how it "
        "ended, or `undeliverable` (the recipient was killed, failed or stopped and will never read it). "
        "Pass your own name.",
        _sent_states,
        read_only=True,
        speaks_as_self=True,
    ),
    Tool(
        "fracta_set_intent",
        "Set your intent: one line saying what you are working on right now (at most 200 characters). "
        "Set it when you start and whenever your focus changes, so the chessmaster and your peers see "
        "who is doing what (fracta_list). You may set only your own intent.",
        _set_intent,
        speaks_as_self=True,
    ),
    Tool(
        "fracta_list",
        "Every agent at a glance: status, intent, branch, unread messages and last activity. Read-only; "
        "use it to see who works on what before you message or peek at someone.",
        _list,
        read_only=True,
    ),
    Tool(
        "fracta_peek",
        "Read an agent's recent output without disturbing it: no message is delivered, no session is "
        "interrupted. Use it to check whether a dependency is done or what a peer found.",
        _peek,
        read_only=True,
    ),
    Tool(
        "fracta_spawn",
        "Chessmaster only. Start a new agent on a task in its own git worktree (branch feature/<name>), "
        "or in `workspace` (a folder) if given. runtime: 'command' (args is the command line) or an AI "
        "CLI adapter such as 'claude' (prompt is its task). Queued if max_agents are already running.",
        _spawn,
        chessmaster_only=True,
    ),
    Tool(
        "fracta_merge",
        "Chessmaster only. Merge an agent's branch (feature/<name>) into the current branch of the main "
        "worktree; on a conflict nothing changes and the conflicting files are listed. notify=true tells "
        "every other live agent 'main updated to <sha>; run git merge main'.",
        _merge,
        chessmaster_only=True,
    ),
    Tool(
        "fracta_kill",
        "Chessmaster only. Stop an agent and remove its worktree and branch. Refused while it has "
        "unmerged commits or uncommitted changes, unless force=true (then the work is first saved under "
        "refs/fracta/archive/<name>/).",
        _kill,
        chessmaster_only=True,
        destructive=True,
    ),
    Tool(
        "fracta_say",
        "Chessmaster only. Send a message as the chessmaster to an agent, or to '*' for every agent. "
        "A running agent reads it at its next fracta_inbox. " + RETRIES,
        _say,
        chessmaster_only=True,
    ),
    Tool(
        "fracta_tools",
        "List or search every tool you can use here, with its description and input schema: fracta's own "
        "and those proxied from backend MCP servers (named <server>__<tool>). `query` keeps the tools "
        "whose name or description contains all of its words; empty lists them all.",
        _tools,
        read_only=True,
    ),
    Tool(
        "graph_query",
        "Read the shared knowledge graph (FalkorDB) with Cypher and $parameters; writes are refused. "
        "At most `limit` rows come back, with a note when cut. Nodes have a label and a `key`; "
        "_by/_at say who wrote each and when.",
        _graph_query,
        read_only=True,
        needs_graph=True,
    ),
    Tool(
        "graph_upsert",
        "Write findings to the shared knowledge graph: nodes merged by label+key, relationships by "
        "type+from+to (missing endpoints are made); properties merged, null removes one. Stamped with "
        "you and the time; repeating a call is harmless.",
        _graph_upsert,
        needs_graph=True,
    ),
    Tool(
        "graph_schema",
        "The shared knowledge graph's labels and relationship types, their counts and property names.",
        _graph_schema,
        read_only=True,
        needs_graph=True,
    ),
    Tool(
        "strategy_list",
        "The strategies you can run: shared analyses over the repo and its agents, run by fracta, the "
        "same answer from any workspace.",
        _strategy_list,
        read_only=True,
    ),
    Tool(
        "strategy_describe",
        "A strategy's parameters (JSON schema), the data it requires and its steps.",
        _strategy_describe,
        read_only=True,
    ),
    Tool(
        "strategy_run",
        "Run a strategy with `params`; returns its findings (some strategies also write them to the "
        "knowledge graph, in your name). A failed step comes back as an error naming it.",
        _strategy_run,
    ),
    Tool(
        "graph_drop",
        "Chessmaster only. Delete the whole knowledge graph; needs confirm=true.",
        _graph_drop,
        chessmaster_only=True,
        destructive=True,
        needs_graph=True,
    ),
)
