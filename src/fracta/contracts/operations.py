"""Every operation of fracta's API, once: its REST route, its MCP tool, its request and result models.

control/openapi.py generates the OpenAPI document from this table, control/app.py validates each
request with its model, gateway/tools.py publishes each tool's input and output schema from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic.json_schema import GenerateJsonSchema

from . import graph as gr
from . import requests as rq
from . import review as rv
from . import shapes as sh
from . import strategies as st
from .base import Contract

# The errors every route may answer besides its own: no token, input the model refuses.
COMMON_ERRORS = (401, 422)


@dataclass(frozen=True)
class Operation:
    id: str
    summary: str
    request: type[Contract]
    result: type[Contract] | None  # None: not JSON (progress.md)
    method: str | None = None  # REST; None for an operation only MCP has
    path: str | None = None
    status: int = 200
    query: tuple[str, ...] = ()  # the request fields sent as query parameters (the path's are in the path)
    errors: tuple[int, ...] = ()  # the statuses of the errors it typically answers, besides COMMON_ERRORS
    tool: str | None = None  # its MCP tool, if it has one

    @property
    def in_path(self) -> tuple[str, ...]:
        return tuple(re.findall(r"{(\w+)}", self.path or ""))

    @property
    def in_body(self) -> tuple[str, ...]:
        """The request's fields (by their JSON names) sent in the JSON body."""
        outside = set(self.in_path) | set(self.query)
        return tuple(key for key in keys(self.request) if key not in outside)


def keys(model: type[Contract]) -> list[str]:
    """A model's fields by their JSON names."""
    return [f.alias or name for name, f in model.model_fields.items()]


class Schema(GenerateJsonSchema):
    """JSON Schema without the titles pydantic derives from field names: they only repeat the keys."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def schema(model: type[Contract]) -> dict[str, Any]:
    """A model's JSON Schema (2020-12), self-contained (`$defs` inside), as MCP publishes it."""
    return model.model_json_schema(schema_generator=Schema)


_AGENT = (403, 404, 409)
OPERATIONS: tuple[Operation, ...] = (
    Operation("health", "Is the control plane up?", rq.NoInput, sh.Health, "GET", "/v1/health"),
    Operation("list", "Every agent", rq.NoInput, sh.AgentList, "GET", "/v1/agents", tool="fracta_list"),
    Operation(
        "spawn",
        "Spawn an agent",
        rq.Spawn,
        sh.OneAgent,
        "POST",
        "/v1/agents",
        201,
        errors=(403, 409),
        tool="fracta_spawn",
    ),
    Operation("agent", "One agent", rq.AgentName, sh.OneAgent, "GET", "/v1/agents/{name}", errors=(404,)),
    Operation(
        "kill",
        "Kill an agent",
        rq.Kill,
        sh.Killed,
        "DELETE",
        "/v1/agents/{name}",
        query=("force",),
        errors=_AGENT,
        tool="fracta_kill",
    ),
    Operation(
        "merge",
        "Merge the agent's branch",
        rq.Merge,
        sh.Merged,
        "POST",
        "/v1/agents/{name}/merge",
        errors=_AGENT,
        tool="fracta_merge",
    ),
    Operation(
        "merge_preview",
        "What merging the agent's branch would do now (the same checks and conflict preview), changing nothing",
        rq.AgentName,
        rv.MergePreview,
        "GET",
        "/v1/agents/{name}/merge/preview",
        errors=(404,),
    ),
    Operation(
        "branch",
        "The agent's branch against the integration branch: ahead, behind, merged, last commit, files, diff",
        rq.AgentName,
        rv.BranchState,
        "GET",
        "/v1/agents/{name}/branch",
        errors=(404,),
    ),
    Operation(
        "messages",
        "The agent's messages both ways with their delivery states, reading none",
        rq.AgentName,
        rv.Messages,
        "GET",
        "/v1/agents/{name}/messages",
        errors=(404,),
    ),
    Operation(
        "read_inbox",
        "Hand out the agent's unread messages; `ack` (the receipt of the previous read) acknowledges what that "
        "read handed out",
        rq.ReadInbox,
        sh.Inbox,
        "POST",
        "/v1/agents/{name}/inbox",
        errors=_AGENT,
        tool="fracta_inbox",
    ),
    Operation(
        "sent",
        "What became of the messages the agent sent: stored, handed, read (when), woken for, undeliverable",
        rq.SentBy,
        sh.SentStates,
        "GET",
        "/v1/agents/{name}/sent",
        errors=_AGENT,
        tool="fracta_sent",
    ),
    Operation(
        "acknowledge",
        "Acknowledge the messages a read handed out under `receipt`",
        rq.Acknowledge,
        sh.Acknowledged,
        "POST",
        "/v1/agents/{name}/inbox/ack",
        errors=_AGENT,
    ),
    Operation(
        "intent", "The agent's intent", rq.AgentName, sh.Intent, "GET", "/v1/agents/{name}/intent", errors=(404,)
    ),
    Operation(
        "set_intent",
        "Set the agent's intent",
        rq.SetIntent,
        sh.Intent,
        "PUT",
        "/v1/agents/{name}/intent",
        errors=_AGENT,
        tool="fracta_set_intent",
    ),
    Operation(
        "peek",
        "Recent output",
        rq.ReadOutput,
        sh.Peek,
        "GET",
        "/v1/agents/{name}/peek",
        query=("n", "since"),
        errors=(404,),
        tool="fracta_peek",
    ),
    Operation(
        "send",
        "Send a message",
        rq.Send,
        sh.Sent,
        "POST",
        "/v1/messages",
        201,
        errors=(403, 404, 409),
        tool="fracta_send",
    ),
    Operation("say", "Send a message as the chessmaster", rq.Say, sh.Sent, tool="fracta_say"),
    Operation("find_tools", "List or search the tools", rq.FindTools, sh.ToolsFound, tool="fracta_tools"),
    Operation("graph_query", "Read the knowledge graph", gr.GraphQuery, gr.GraphRows, tool="graph_query"),
    Operation("graph_upsert", "Write to the knowledge graph", gr.GraphUpsert, gr.GraphWritten, tool="graph_upsert"),
    Operation("graph_schema", "The knowledge graph's shape", rq.NoInput, gr.GraphSchema, tool="graph_schema"),
    Operation("graph_drop", "Drop the knowledge graph", gr.GraphDrop, gr.GraphDropped, tool="graph_drop"),
    Operation("strategy_list", "The strategies", rq.NoInput, st.StrategyList, tool="strategy_list"),
    Operation("strategy_describe", "One strategy", st.StrategyName, st.StrategyDescription, tool="strategy_describe"),
    Operation("strategy_run", "Run a strategy", st.StrategyRun, st.StrategyResult, tool="strategy_run"),
    Operation(
        "ui_login",
        "A one-time link into the web view (the chessmaster only)",
        rq.NoInput,
        rv.UiLogin,
        "POST",
        "/v1/ui/login",
        201,
        errors=(403,),
    ),
    Operation("progress", "progress.md", rq.NoInput, None, "GET", "/v1/progress"),
    Operation(
        "events",
        "The event log: a JSON page, or a live stream with Accept: text/event-stream",
        rq.ReadEvents,
        sh.EventPage,
        "GET",
        "/v1/events",
        query=("since", "limit", "named"),
    ),
)


def by_tool(name: str) -> Operation:
    return next(op for op in OPERATIONS if op.tool == name)


def by_id(name: str) -> Operation:
    return next(op for op in OPERATIONS if op.id == name)
