"""OpenAI Chat Completions (OpenCode's openai-compatible provider): `POST /v1/chat/completions`."""

from __future__ import annotations

import time
from typing import Any

from .script import Conversation, Reply, Tool, ToolResult, Usage, flatten
from .sse import Body, json_body, sse_data


def parse(body: dict[str, Any]) -> Conversation:
    tools = [
        Tool(t["function"]["name"])
        for t in body.get("tools") or []
        if isinstance(t, dict) and isinstance(t.get("function"), dict) and "name" in t["function"]
    ]
    results: list[ToolResult] = []
    answers = 0
    user_texts: list[str] = []
    for message in body.get("messages") or []:
        role = message.get("role")
        if role == "tool":
            results.append(ToolResult(str(message.get("tool_call_id")), flatten(message.get("content"))))
        elif role == "assistant":
            answers += bool(flatten(message.get("content"))) and not message.get("tool_calls")
        elif role == "user":
            user_texts.append(flatten(message.get("content")))
    return Conversation(
        model=str(body.get("model", "")),
        stream=bool(body.get("stream")),
        tools=tools,
        tool_results=results,
        answers=answers,
        user_texts=user_texts,
    )


def render(reply: Reply, conv: Conversation, usage: Usage, completion_id: str) -> Body:
    if reply.error:
        error = {"message": reply.error.message, "type": "invalid_request_error", "param": None, "code": None}
        return json_body({"error": error}, reply.error.status)
    counts = {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }
    if reply.tool:
        function = {"name": reply.tool.name, "arguments": reply.arguments}
        tool_call = {"id": reply.call_id, "type": "function", "function": function}
        message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [tool_call]}
        delta: dict[str, Any] = {"role": "assistant", "tool_calls": [{"index": 0, **tool_call}]}
        finish = "tool_calls"
    else:
        message = {"role": "assistant", "content": reply.text or ""}
        delta = {"role": "assistant", "content": reply.text or ""}
        finish = "stop"
    head = {"id": completion_id, "created": int(time.time()), "model": conv.model}
    if not conv.stream:
        choice = {"index": 0, "message": message, "finish_reason": finish}
        return json_body({**head, "object": "chat.completion", "choices": [choice], "usage": counts})
    chunk = {**head, "object": "chat.completion.chunk"}
    chunks = [
        sse_data({**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}),
        sse_data({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}], "usage": counts}),
        sse_data("[DONE]"),
    ]
    return Body(200, "text/event-stream", b"".join(chunks))
