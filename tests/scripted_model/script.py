"""Scripts (steps an agent's model takes) and the wire-neutral view of one model request.

Step selection is stateless: a request's conversation already holds every tool result and every
final answer the model gave before, so the next step is `steps[tool results + final answers]`.
That survives retries, resumed sessions (a resumed run carries the earlier history) and several
processes sharing one agent's script.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Call:
    """Call the offered tool whose name ends with `tool` (see `match_tool`) with `args`."""

    tool: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Say:
    """Answer with `text` and end the turn."""

    text: str


@dataclass(frozen=True)
class Fail:
    """Answer with an HTTP error in the API's own error shape (400: the CLIs do not retry it)."""

    status: int = 400
    message: str = "scripted failure"


Step = Call | Say | Fail


def call(tool: str, args: dict[str, Any] | None = None, /, **kwargs: Any) -> Call:
    """A step calling `tool` (a suffix of the name the CLI exposes) with `args` or keyword args."""
    return Call(tool, {**(args or {}), **kwargs})


def say(text: str) -> Say:
    """A step answering `text`, ending the turn."""
    return Say(text)


def fail(status: int = 400, message: str = "scripted failure") -> Fail:
    """A step answering with an HTTP error."""
    return Fail(status, message)


@dataclass(frozen=True)
class Tool:
    """A tool offered in a request; `namespace` is set for Codex's grouped MCP tools."""

    name: str
    namespace: str | None = None

    @property
    def full_name(self) -> str:
        return f"{self.namespace}__{self.name}" if self.namespace else self.name


@dataclass(frozen=True)
class ToolResult:
    """A tool result found in a request's conversation, its content flattened to text."""

    call_id: str
    text: str
    is_error: bool = False


@dataclass(frozen=True)
class Conversation:
    """What a model request carries, whatever its wire format."""

    model: str
    stream: bool
    tools: list[Tool]
    tool_results: list[ToolResult]
    answers: int  # assistant turns that ended with text and no tool call
    user_texts: list[str]

    @property
    def step_index(self) -> int:
        return len(self.tool_results) + self.answers


@dataclass(frozen=True)
class Usage:
    """Token counts every reply of an agent reports (fixed, so tests can assert on them)."""

    input_tokens: int = 100
    output_tokens: int = 10


@dataclass(frozen=True)
class Reply:
    """What the server answers: text, one tool call, or an HTTP error."""

    text: str | None = None
    tool: Tool | None = None
    call_id: str = ""
    arguments: str = "{}"
    error: Fail | None = None


class NoSuchTool(LookupError):
    pass


# Claude Code 2.1 may send its first request before its MCP servers are connected, offering this
# tool instead of theirs. Like a real model, the script then calls it; its results do not count
# as a step (parsers leave them out of `tool_results`) and `Agent.tool_calls()` leaves it out.
WAIT_FOR_MCP = "WaitForMcpServers"


def match_tool(wanted: str, offered: list[Tool]) -> Tool:
    """The offered tool named `wanted` or whose full name ends with `_wanted` (one match, or an error).

    `fracta_send` matches Claude's `mcp__fracta__fracta_send`, Codex's `fracta_send` in namespace
    `mcp__fracta`, and OpenCode's `fracta_fracta_send`.
    """
    exact = [t for t in offered if wanted in (t.name, t.full_name)]
    if len(exact) == 1:
        return exact[0]
    found = exact or [t for t in offered if t.full_name.endswith("_" + wanted)]
    if len(found) == 1:
        return found[0]
    names = sorted(t.full_name for t in offered)
    if not found:
        raise NoSuchTool(f"no offered tool matches {wanted!r}; offered: {names}")
    raise NoSuchTool(f"{wanted!r} is ambiguous: {sorted(t.full_name for t in found)}")


def next_reply(steps: list[Step], conv: Conversation, side_text: str, call_id: str) -> Reply:
    """The reply to `conv`: plain text when it offers no tools, else the script's next step."""
    if not conv.tools:
        return Reply(text=side_text)
    index = conv.step_index
    if index >= len(steps):
        return Reply(text=f"(scripted model: script finished after {len(steps)} steps)")
    step = steps[index]
    if isinstance(step, Say):
        return Reply(text=step.text)
    if isinstance(step, Fail):
        return Reply(error=step)
    try:
        tool = match_tool(step.tool, conv.tools)
    except NoSuchTool:
        if not any(t.name == WAIT_FOR_MCP for t in conv.tools):
            raise
        return Reply(tool=Tool(WAIT_FOR_MCP), call_id=call_id)
    return Reply(tool=tool, call_id=call_id, arguments=json.dumps(step.args))


def flatten(content: Any) -> str:
    """Text of a content field that is a string, a list of parts, or anything else (as JSON)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
            else:
                parts.append(json.dumps(part))
        return "\n".join(parts)
    return "" if content is None else json.dumps(content)
