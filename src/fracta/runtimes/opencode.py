"""The `opencode` runtime: `opencode run --format json`, configured through OPENCODE_CONFIG.

OpenCode merges OPENCODE_CONFIG=<agent dir>/opencode.json over the user's global config, so
their providers and login keep working and their files are never changed. The file adds the
gateway with the agent's token (tools appear as fracta_<tool>), the model, and the `config` option.
Each run gets its own TMPDIR under the agent's folder (OpenCode leaves a native library there).

Options (agents.agent_runtimes.opencode), besides binary, model ("provider/model"), args, env
and auth_profile:
  config   a mapping merged into opencode.json, e.g. {provider: {x: {npm: "@ai-sdk/openai-compatible",
           options: {baseURL: ...}, models: {m: {}}}}}
"""

from __future__ import annotations

import json
from typing import Any

from . import options, prompt, stream
from .base import Launch, LaunchContext, OutputEvent

OWN = frozenset({"config"})
CONFIG_FILE = "opencode.json"
PREFIX = f"{options.SERVER}_"


class OpenCodeRuntime:
    name = "opencode"
    resumable = True

    def check(self, ctx: LaunchContext) -> None:
        opts = options.parse(self.name, ctx.options, OWN, ctx.name)
        options.find_binary(ctx, opts)
        options.mapping(opts, "config")

    def launch(self, ctx: LaunchContext) -> Launch:
        opts = options.parse(self.name, ctx.options, OWN, ctx.name)
        binary = options.find_binary(ctx, opts)
        url, headers = options.gateway(ctx)
        config: dict[str, Any] = {
            "$schema": "https://opencode.ai/config.json",
            "autoupdate": False,
            "share": "disabled",
        }
        if opts.model:
            config["model"] = opts.model
        config = options.merge(config, options.mapping(opts, "config"))
        fracta = {"type": "remote", "url": url, "headers": headers, "enabled": True}
        config = options.merge(config, {"mcp": {options.SERVER: fracta}})
        path = ctx.agent_dir / CONFIG_FILE
        options.write_private(path, json.dumps(config, indent=2) + "\n")
        tmp = ctx.agent_dir / "tmp"
        tmp.mkdir(mode=0o700, exist_ok=True)
        argv = [binary, "run", "--format", "json"]
        if ctx.session_id:
            argv += ["--session", ctx.session_id]
        if opts.model:
            argv += ["--model", opts.model]
        argv += [*opts.args, prompt.for_launch(ctx)]
        env = {
            "OPENCODE_CONFIG": str(path),
            "OPENCODE_DISABLE_AUTOUPDATE": "1",
            "TMPDIR": str(tmp),
        }
        return Launch(argv=argv, env=env, cwd=ctx.workspace)

    def parse(self, record: dict[str, Any]) -> list[OutputEvent]:
        data = stream.decode(record)
        if data is None:
            return [stream.line(record)]
        ts = record.get("ts")
        kind = data.get("type")
        part = _dict(data.get("part"))
        events: list[OutputEvent] = []
        if kind == "step_start" and data.get("sessionID"):
            session = str(data["sessionID"])
            events.append(OutputEvent(kind="session", text=f"session {session}", ts=ts, data={"session_id": session}))
        elif kind == "text" and str(part.get("text", "")).strip():
            events.append(OutputEvent(kind="text", text=stream.short(str(part["text"])), ts=ts))
        elif kind == "tool_use":
            events.extend(_tool(part, ts))
        elif kind == "step_finish":
            tokens = _dict(part.get("tokens"))
            cache = _dict(tokens.get("cache"))
            tokens_in = stream.number(tokens.get("input")) + stream.number(cache.get("read"))
            tokens_in += stream.number(cache.get("write"))
            tokens_out = stream.number(tokens.get("output")) + stream.number(tokens.get("reasoning"))
            cost = part.get("cost")
            cost = cost if isinstance(cost, int | float) and not isinstance(cost, bool) and cost else None
            events.append(stream.usage(ts, tokens_in, tokens_out, cost))
        elif kind == "error":
            err = data.get("error")
            message = _error_text(err)
            events.append(OutputEvent(kind="error", text=stream.short(message), ts=ts, data={"message": message}))
        return events

    def finished_status(self, exit_code: int) -> str:
        return "idle" if exit_code == 0 else "failed"


def _tool(part: dict[str, Any], ts: Any) -> list[OutputEvent]:
    """A finished tool call is one record carrying both the call and its result."""
    name = stream.tool_name(str(part.get("tool", "")), PREFIX)
    state = _dict(part.get("state"))
    ident = part.get("callID") or part.get("id")
    call = OutputEvent(
        kind="tool_call",
        text=stream.call_text(name, state.get("input")),
        ts=ts,
        data={"id": ident, "name": part.get("tool"), "input": state.get("input")},
    )
    failed = state.get("status") == "error"
    text = str(state.get("error") if failed else state.get("output") or "")
    result = OutputEvent(
        kind="tool_result",
        text=stream.result_text(text, failed),
        ts=ts,
        data={"id": ident, "name": part.get("tool"), "is_error": failed},
    )
    return [call, result]


def _error_text(err: Any) -> str:
    if isinstance(err, dict):
        data = _dict(err.get("data"))
        return str(data.get("message") or err.get("message") or err.get("name") or err)
    return str(err)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
