"""Helpers for turning an AI CLI's JSON-lines output into readable OutputEvents.

Event kinds and their `data`:
  text         assistant text
  tool_call    {"id", "name", "input"}; `text` is name(args) shortened, without the mcp prefix
  tool_result  {"id", "name"?, "is_error"}; `text` is the result, shortened
  usage        {"input_tokens", "output_tokens", "total_tokens", "cache_read_tokens"?, "cache_write_tokens"?,
               "cost_usd"?, "model"?, "step"?, "last"?}: what one turn (or run) used (input_tokens
               includes the cached ones); the runner adds them up into the agent's usage (fracta.usage).
               A runtime that reports every step (OpenCode) sets "step", and "last" on a run's
               final step: peek shows one summed line per run instead of one per step
  session      {"session_id"}
  error        {"message"}
  line         a line that is not one of the CLI's JSON events (stderr, or plain text)
  run          made by peek, not by an adapter: where a run starts (a wake: {"session_id"})
"""

from __future__ import annotations

import json
from typing import Any

from .base import OutputEvent

MAX_TEXT = 2000  # characters of a tool result or text shown by peek; the full line stays in output.jsonl
MAX_ARG = 120


def decode(record: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON object on this record's stdout line, or None (stderr, plain text, other JSON)."""
    if record.get("stream", "stdout") != "stdout":
        return None
    line = str(record.get("line", ""))
    if not line.startswith("{"):
        return None
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def line(record: dict[str, Any]) -> OutputEvent:
    stream = record.get("stream", "stdout")
    return OutputEvent(kind="line", text=str(record.get("line", "")), ts=record.get("ts"), data={"stream": stream})


def short(text: str, limit: int = MAX_TEXT) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def call_text(name: str, args: Any) -> str:
    """fracta_send(to='b', message='hello…'): a tool call in one readable line."""
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            return f"{name}({short(args, MAX_ARG)})"
    if not isinstance(args, dict):
        return f"{name}({short(json.dumps(args), MAX_ARG)})"
    parts = [f"{k}={short(v if isinstance(v, str) else json.dumps(v), MAX_ARG)!r}" for k, v in args.items()]
    return f"{name}({', '.join(parts)})"


def result_text(text: str, failed: bool) -> str:
    """A tool result for peek: shortened, and marked when it is an error (once, not twice)."""
    text = short(text)
    return f"error: {text}" if failed and not text.lower().startswith("error") else text


def tool_name(name: str, *prefixes: str) -> str:
    for prefix in prefixes:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def usage(
    ts: Any,
    input_tokens: int,
    output_tokens: int,
    cost: float | None = None,
    *,
    cache_read: int = 0,
    cache_write: int = 0,
    model: str | None = None,
) -> OutputEvent:
    """`input_tokens` counts every input token, the cached ones (`cache_read`, `cache_write`) too."""
    total = input_tokens + output_tokens
    data: dict[str, Any] = {"input_tokens": input_tokens, "output_tokens": output_tokens, "total_tokens": total}
    if cache_read or cache_write:
        data.update(cache_read_tokens=cache_read, cache_write_tokens=cache_write)
    if model:
        data["model"] = model
    text = f"{total} tokens ({input_tokens} in, {output_tokens} out)"
    if cost is not None:
        data["cost_usd"] = cost
        text += f", ${cost:.4f}"
    return OutputEvent(kind="usage", text=text, ts=ts, data=data)


def number(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def content_text(content: Any) -> str:
    """Text out of a tool result's content: a string, or a list of {"type": "text", "text"} blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(c.get("text", "")) for c in content if isinstance(c, dict) and c.get("type") == "text")
    if isinstance(content, dict):
        return content_text(content.get("content")) or json.dumps(content)
    return "" if content is None else str(content)
