"""A response body, and the two SSE framings (`event:` + `data:` for Anthropic and Responses,
bare `data:` lines for Chat Completions)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Body:
    status: int
    content_type: str
    data: bytes


def json_body(obj: Any, status: int = 200) -> Body:
    return Body(status, "application/json", json.dumps(obj).encode())


def sse_event(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def sse_data(data: Any) -> bytes:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()
