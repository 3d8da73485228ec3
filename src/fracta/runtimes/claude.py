"""The `claude` runtime: Claude Code in headless mode (`claude -p ... --output-format stream-json`).

Per agent it writes `claude-mcp.json` (the gateway with the agent's token; `--strict-mcp-config`
keeps the user's own MCP servers out) and, when needed, `claude-settings.json` (passed with
`--settings`, layered over the user's settings, never replacing them). The user's own login keeps
working: HOME is not changed.

Permissions (docs/permissions.md): in `-p` mode a tool call that needs approval is refused, so
the defaults are what an agent can do: edit files in its worktree (acceptEdits; Claude asks, so
refuses, for files outside its working directory), run Claude's own read-only commands, the git
commands its work needs and the project's tests (permissions.py), and fracta's tools.

Options (agents.agent_runtimes.claude), besides binary, model, args, env and auth_profile:
  allowed_tools    rules allowed without a prompt besides fracta's tools and test_commands
                   (default: Bash(<cmd>:*) for git status/diff/log/show/add/commit/merge);
                   e.g. [Bash, Edit, Write] allows every command and edit
  test_commands    command prefixes the agent may run to test (default: permissions.TEST_COMMANDS,
                   e.g. "python -m pytest", "npm test"); [] allows none
  permission_mode  passed as --permission-mode (default acceptEdits: it may edit its worktree)
  settings         a mapping merged into the per-agent settings file
"""

from __future__ import annotations

import json
from typing import Any

from . import options, permissions, prompt, stream
from .base import Launch, LaunchContext, OutputEvent

OWN = frozenset({"allowed_tools", "test_commands", "permission_mode", "settings"})
DEFAULT_ALLOWED = [f"Bash({cmd}:*)" for cmd in permissions.GIT_COMMANDS]
PREFIX = f"mcp__{options.SERVER}__"
MCP_FILE = "claude-mcp.json"
SETTINGS_FILE = "claude-settings.json"


class ClaudeRuntime:
    name = "claude"
    resumable = True

    def check(self, ctx: LaunchContext) -> None:
        opts = options.parse(self.name, ctx.options, OWN, ctx.name)
        options.find_binary(ctx, opts)
        _allowed(opts)
        options.mapping(opts, "settings")

    def launch(self, ctx: LaunchContext) -> Launch:
        opts = options.parse(self.name, ctx.options, OWN, ctx.name)
        binary = options.find_binary(ctx, opts)
        url, headers = options.gateway(ctx)
        mcp = {"mcpServers": {options.SERVER: {"type": "http", "url": url, "headers": headers}}}
        mcp_path = ctx.agent_dir / MCP_FILE
        options.write_private(mcp_path, json.dumps(mcp, indent=2) + "\n")
        allowed = [PREFIX + t for t in options.AGENT_TOOLS] + _allowed(opts)
        argv = [binary, "-p", prompt.for_launch(ctx)]
        if ctx.session_id:
            argv += ["--resume", ctx.session_id]
        argv += ["--output-format", "stream-json", "--verbose", "--mcp-config", str(mcp_path), "--strict-mcp-config"]
        argv += ["--allowedTools", ",".join(allowed)]
        mode = opts.extra.get("permission_mode", "acceptEdits")
        if mode:
            argv += ["--permission-mode", str(mode)]
        if opts.model:
            argv += ["--model", opts.model]
        settings = self._settings(ctx, opts)
        if settings:
            path = ctx.agent_dir / SETTINGS_FILE
            options.write_private(path, json.dumps(settings, indent=2) + "\n")
            argv += ["--settings", str(path)]
        argv += opts.args
        # Wait for fracta's gateway before the first model request: Claude 2.1 otherwise connects
        # MCP servers in the background and its first turn may lack fracta's tools.
        env = {"DISABLE_AUTOUPDATER": "1", "MCP_CONNECTION_NONBLOCKING": "0"}
        return Launch(argv=argv, env=env, cwd=ctx.workspace)

    def _settings(self, ctx: LaunchContext, opts: options.Options) -> dict[str, Any]:
        settings = options.mapping(opts, "settings")
        helper = ctx.credentials.claude_api_key_helper
        if helper:  # the credential pipeline hands Claude its key through a command, never in a file
            settings["apiKeyHelper"] = helper
        return settings

    def parse(self, record: dict[str, Any]) -> list[OutputEvent]:
        data = stream.decode(record)
        if data is None:
            return [stream.line(record)]
        ts = record.get("ts")
        kind = data.get("type")
        if kind == "system" and data.get("subtype") == "init":
            return _init(data, ts)
        if kind == "assistant":
            return _assistant(data, ts)
        if kind == "user":
            return _tool_results(data, ts)
        if kind == "result":
            return _result(data, ts)
        return []  # other system events (hooks, status): nothing a reader needs

    def finished_status(self, exit_code: int) -> str:
        # idle: the session can be resumed (the runner makes it done if no session id was seen)
        return "idle" if exit_code == 0 else "failed"


def _allowed(opts: options.Options) -> list[str]:
    """The rules allowed besides fracta's tools: allowed_tools, then a Bash rule per test command."""
    tests = options.strings(opts, "test_commands", list(permissions.TEST_COMMANDS))
    return options.strings(opts, "allowed_tools", DEFAULT_ALLOWED) + [f"Bash({cmd}:*)" for cmd in tests]


def _init(data: dict[str, Any], ts: Any) -> list[OutputEvent]:
    session = str(data.get("session_id") or "")
    servers = data.get("mcp_servers") or []
    wiring = ", ".join(f"{s.get('name')}: {s.get('status')}" for s in servers if isinstance(s, dict))
    text = f"session {session}" + (f" (model {data['model']})" if data.get("model") else "")
    events = [OutputEvent(kind="session", text=text, ts=ts, data={"session_id": session})] if session else []
    failed = [s for s in servers if isinstance(s, dict) and s.get("status") not in (None, "connected")]
    if failed:
        events.append(OutputEvent(kind="error", text=f"MCP servers: {wiring}", ts=ts, data={"message": wiring}))
    return events


def _assistant(data: dict[str, Any], ts: Any) -> list[OutputEvent]:
    events: list[OutputEvent] = []
    for block in (data.get("message") or {}).get("content") or []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and str(block.get("text", "")).strip():
            events.append(OutputEvent(kind="text", text=stream.short(block["text"]), ts=ts))
        elif block.get("type") == "tool_use":
            name = str(block.get("name", ""))
            payload = {"id": block.get("id"), "name": name, "input": block.get("input")}
            text = stream.call_text(stream.tool_name(name, PREFIX), block.get("input"))
            events.append(OutputEvent(kind="tool_call", text=text, ts=ts, data=payload))
    return events


def _tool_results(data: dict[str, Any], ts: Any) -> list[OutputEvent]:
    events: list[OutputEvent] = []
    content = (data.get("message") or {}).get("content")
    for block in content if isinstance(content, list) else []:
        if isinstance(block, dict) and block.get("type") == "tool_result":
            failed = bool(block.get("is_error"))
            text = stream.short(stream.content_text(block.get("content")))
            payload = {"id": block.get("tool_use_id"), "is_error": failed}
            events.append(OutputEvent(kind="tool_result", text=stream.result_text(text, failed), ts=ts, data=payload))
    return events


def _result(data: dict[str, Any], ts: Any) -> list[OutputEvent]:
    use = data.get("usage") or {}
    cache_read = stream.number(use.get("cache_read_input_tokens"))
    cache_write = stream.number(use.get("cache_creation_input_tokens"))
    tokens_in = stream.number(use.get("input_tokens")) + cache_read + cache_write
    cost = data.get("total_cost_usd")
    cost = cost if isinstance(cost, int | float) and not isinstance(cost, bool) else None
    models = data.get("modelUsage")
    model = next(iter(models), None) if isinstance(models, dict) else None
    out = stream.number(use.get("output_tokens"))
    events = [stream.usage(ts, tokens_in, out, cost, cache_read=cache_read, cache_write=cache_write, model=model)]
    denied = [str(d.get("tool_name")) for d in data.get("permission_denials") or [] if isinstance(d, dict)]
    if denied:
        text = f"permission denied for: {', '.join(denied)}"
        events.append(OutputEvent(kind="error", text=text, ts=ts, data={"message": text}))
    if data.get("is_error") or (data.get("subtype") not in (None, "success")):
        message = str(data.get("result") or data.get("subtype") or "error")
        events.append(OutputEvent(kind="error", text=stream.short(message), ts=ts, data={"message": message}))
    return events
