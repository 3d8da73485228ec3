"""Anthropic Messages API (Claude Code): `POST /v1/messages`, streamed as SSE or one JSON object."""

from __future__ import annotations

import json
from typing import Any

from .script import WAIT_FOR_MCP, Conversation, Reply, Tool, ToolResult, Usage, flatten
from .sse import Body, json_body, sse_event


def parse(body: dict[str, Any]) -> Conversation:
    tools = [Tool(t["name"]) for t in body.get("tools") or [] if isinstance(t, dict) and "name" in t]
    results: list[ToolResult] = []
    answers = 0
    user_texts: list[str] = []
    waits: set[str] = set()  # ids of calls to WaitForMcpServers
    for message in body.get("messages") or []:
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        blocks = [b for b in blocks if isinstance(b, dict)]
        kinds = {b.get("type") for b in blocks}
        if message.get("role") == "assistant":
            answers += "text" in kinds and "tool_use" not in kinds
            waits |= {str(b.get("id")) for b in blocks if b.get("type") == "tool_use" and b.get("name") == WAIT_FOR_MCP}
            continue
        for block in blocks:
            if block.get("type") == "tool_result" and str(block.get("tool_use_id")) not in waits:
                text = flatten(block.get("content"))
                results.append(ToolResult(str(block.get("tool_use_id")), text, bool(block.get("is_error"))))
            elif block.get("type") == "text":
                user_texts.append(str(block.get("text")))
    return Conversation(
        model=str(body.get("model", "")),
        stream=bool(body.get("stream")),
        tools=tools,
        tool_results=results,
        answers=answers,
        user_texts=user_texts,
    )


def render(reply: Reply, conv: Conversation, usage: Usage, message_id: str) -> Body:
    if reply.error:
        error = {"type": "error", "error": {"type": "invalid_request_error", "message": reply.error.message}}
        return json_body(error, reply.error.status)
    if reply.tool:
        block: dict[str, Any] = {"type": "tool_use", "id": reply.call_id, "name": reply.tool.name, "input": {}}
        full = {**block, "input": json.loads(reply.arguments)}
        delta = {"type": "input_json_delta", "partial_json": reply.arguments}
        stop = "tool_use"
    else:
        block = {"type": "text", "text": ""}
        full = {**block, "text": reply.text or ""}
        delta = {"type": "text_delta", "text": reply.text or ""}
        stop = "end_turn"
    counts = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}
    message: dict[str, Any] = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": conv.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**counts, "output_tokens": 1},
    }
    if not conv.stream:
        return json_body({**message, "content": [full], "stop_reason": stop, "usage": counts})
    events = [
        sse_event("message_start", {"type": "message_start", "message": message}),
        sse_event("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}),
        sse_event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}),
        sse_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        sse_event(
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": counts},
        ),
        sse_event("message_stop", {"type": "message_stop"}),
    ]
    return Body(200, "text/event-stream", b"".join(events))


def count_tokens(body: dict[str, Any]) -> Body:
    """A rough count (4 characters a token): Claude Code only needs a number."""
    return json_body({"input_tokens": max(1, len(json.dumps(body.get("messages", []))) // 4)})
