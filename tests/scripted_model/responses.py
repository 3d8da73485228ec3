"""OpenAI Responses API (Codex): `POST /v1/responses`, streamed as SSE.

Codex offers MCP tools grouped as `{"type": "namespace", "name": "mcp__<server>", "tools": [...]}`
and accepts a call to one only as a `function_call` item carrying that `namespace`.
"""

from __future__ import annotations

import time
from typing import Any

from .script import Conversation, Reply, Tool, ToolResult, Usage, flatten
from .sse import Body, json_body, sse_event


def _tools(offered: list[Any]) -> list[Tool]:
    tools: list[Tool] = []
    for t in offered:
        if not isinstance(t, dict):
            continue
        if t.get("type") == "namespace":
            tools += [Tool(sub["name"], t.get("name")) for sub in t.get("tools") or [] if "name" in sub]
        elif "name" in t:
            tools.append(Tool(t["name"]))
    return tools


def parse(body: dict[str, Any]) -> Conversation:
    items = body.get("input")
    if isinstance(items, str):
        items = [{"type": "message", "role": "user", "content": items}]
    results: list[ToolResult] = []
    answers = 0
    user_texts: list[str] = []
    for item in items or []:
        kind = item.get("type", "message")
        if kind in ("function_call_output", "custom_tool_call_output"):
            output = item.get("output")
            if isinstance(output, dict):  # {"content": ..., "success": ...} in some versions
                results.append(
                    ToolResult(
                        str(item.get("call_id")), flatten(output.get("content")), not output.get("success", True)
                    )
                )
            else:
                results.append(ToolResult(str(item.get("call_id")), flatten(output)))
        elif kind == "message" and item.get("role") == "assistant":
            answers += 1
        elif kind == "message" and item.get("role") == "user":
            user_texts.append(flatten(item.get("content")))
    return Conversation(
        model=str(body.get("model", "")),
        stream=bool(body.get("stream", False)),
        tools=_tools(body.get("tools") or []),
        tool_results=results,
        answers=answers,
        user_texts=user_texts,
    )


def render(reply: Reply, conv: Conversation, usage: Usage, response_id: str) -> Body:
    if reply.error:
        error = {"type": "invalid_request_error", "code": None, "message": reply.error.message, "param": None}
        return json_body({"error": error}, reply.error.status)
    item_id = response_id.replace("resp_", "item_")
    item: dict[str, Any]
    if reply.tool:
        item = {
            "type": "function_call",
            "id": item_id,
            "call_id": reply.call_id,
            "name": reply.tool.name,
            "arguments": reply.arguments,
            "status": "completed",
        }
        if reply.tool.namespace:
            item["namespace"] = reply.tool.namespace
        deltas: list[bytes] = []
    else:
        part = {"type": "output_text", "text": reply.text or "", "annotations": []}
        item = {"type": "message", "id": item_id, "role": "assistant", "status": "completed", "content": [part]}
        delta = {"type": "response.output_text.delta", "item_id": item_id, "output_index": 0, "content_index": 0}
        deltas = [sse_event("response.output_text.delta", {**delta, "delta": reply.text or ""})]
    response = {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": "in_progress",
        "model": conv.model,
        "output": [],
    }
    counts = {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }
    done = {**response, "status": "completed", "output": [item], "usage": counts}
    if not conv.stream:
        return json_body(done)
    added = {**item, "status": "in_progress"}
    if not reply.tool:
        added["content"] = []
    events = [
        sse_event("response.created", {"type": "response.created", "response": response}),
        sse_event(
            "response.output_item.added", {"type": "response.output_item.added", "output_index": 0, "item": added}
        ),
        *deltas,
        sse_event("response.output_item.done", {"type": "response.output_item.done", "output_index": 0, "item": item}),
        sse_event("response.completed", {"type": "response.completed", "response": done}),
    ]
    return Body(200, "text/event-stream", b"".join(events))
