"""A scripted model server for driving the real AI CLIs offline (see docs/testing-ai-clis.md)."""

from __future__ import annotations

from .script import Call, Conversation, Fail, Say, Step, Tool, ToolResult, Usage, call, fail, match_tool, say
from .server import Agent, Request, ScriptedModel

__all__ = [
    "Agent",
    "Call",
    "Conversation",
    "Fail",
    "Request",
    "Say",
    "ScriptedModel",
    "Step",
    "Tool",
    "ToolResult",
    "Usage",
    "call",
    "fail",
    "match_tool",
    "say",
]
