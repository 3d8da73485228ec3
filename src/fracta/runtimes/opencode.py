"""The `opencode` runtime: `opencode run --format json`, its config passed in OPENCODE_CONFIG_CONTENT.

OpenCode layers its config: the user's global config, OPENCODE_CONFIG, then the project's
opencode.json files found from the working directory, then OPENCODE_CONFIG_CONTENT (read in
OpenCode 1.18's config loader). A project's committed opencode.json, as `fracta init` writes it,
would override an OPENCODE_CONFIG file inside an agent's worktree: its `mcp.fracta` runs
`fracta serve` (the bridge for the user's own CLI), so every agent would start one of its own
instead of talking to the gateway with its token. So the per-agent config goes in
OPENCODE_CONFIG_CONTENT, merged last: it always wins, and the rest of the project's config (its
other settings, its AGENTS.md) still applies. (OPENCODE_DISABLE_PROJECT_CONFIG would also skip the
project's AGENTS.md instructions.) The same document is kept in <agent dir>/opencode.json (0600)
for people to read; the user's global config and login keep working, their files never change.

The document holds the gateway with the agent's token (tools appear as fracta_<tool>), the model,
fracta's default permissions and the `config` option. Permissions (docs/permissions.md): edits in
the worktree; only the read-only, git and test commands of permissions.py in bash; nothing outside
the worktree (`external_directory`); no web fetches. `opencode run` refuses whatever would need
approval; with `experimental.continue_loop_on_deny` the model is told and carries on, where
OpenCode would otherwise end the run at the first refusal.
Each run gets its own TMPDIR under the agent's folder (OpenCode leaves a native library there).

Options (agents.agent_runtimes.opencode), besides binary, model ("provider/model"), args, env
and auth_profile:
  config         a mapping merged into the agent's config, e.g. {provider: {x: {npm:
                 "@ai-sdk/openai-compatible", options: {baseURL: ...}, models: {m: {}}}}}; its
                 `permission` key widens or narrows fracta's defaults, e.g. {permission: {bash: allow}}
  test_commands  command prefixes the agent may run to test (default: permissions.TEST_COMMANDS)
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from . import options, permissions, prompt, stream
from .base import FirstStart, Launch, LaunchContext, OutputEvent

OWN = frozenset({"config", "test_commands"})
CONFIG_FILE = "opencode.json"
PREFIX = f"{options.SERVER}_"


class OpenCodeRuntime:
    name = "opencode"
    resumable = True

    def check(self, ctx: LaunchContext) -> None:
        opts = options.parse(self.name, ctx.options, OWN, ctx.name)
        options.find_binary(ctx, opts)
        options.mapping(opts, "config")
        options.strings(opts, "test_commands", list(permissions.TEST_COMMANDS))

    def launch(self, ctx: LaunchContext) -> Launch:
        opts = options.parse(self.name, ctx.options, OWN, ctx.name)
        binary = options.find_binary(ctx, opts)
        text = json.dumps(self.config(ctx, opts), indent=2) + "\n"
        options.write_private(ctx.agent_dir / CONFIG_FILE, text)
        tmp = ctx.agent_dir / "tmp"
        tmp.mkdir(mode=0o700, exist_ok=True)
        argv = [binary, "run", "--format", "json"]
        if ctx.session_id:
            argv += ["--session", ctx.session_id]
        if opts.model:
            argv += ["--model", opts.model]
        argv += [*opts.args, prompt.for_launch(ctx)]
        env = {
            "OPENCODE_CONFIG_CONTENT": text,
            "OPENCODE_DISABLE_AUTOUPDATE": "1",
            "TMPDIR": str(tmp),
        }
        # OpenCode creates and migrates its database on its first start, and two first starts at
        # once race (one fails: "Failed query: CREATE TABLE ..."; 1 in 18 for three at once).
        first = None if ctx.session_id else FirstStart([binary, "session", "list"], "opencode/opencode.db")
        return Launch(argv=argv, env=env, cwd=ctx.workspace, first_start=first)

    def config(self, ctx: LaunchContext, opts: options.Options) -> dict[str, Any]:
        """The agent's whole OpenCode config: fracta's defaults, the `config` option, the gateway."""
        url, headers = options.gateway(ctx)
        tests = options.strings(opts, "test_commands", list(permissions.TEST_COMMANDS))
        config: dict[str, Any] = {
            "$schema": "https://opencode.ai/config.json",
            "autoupdate": False,
            "share": "disabled",
            "permission": default_permission(tests),
            "experimental": {"continue_loop_on_deny": True},
        }
        if opts.model:
            config["model"] = opts.model
        config = options.merge(config, options.mapping(opts, "config"))
        fracta = {"type": "remote", "url": url, "headers": headers, "enabled": True}
        return options.merge(config, {"mcp": {options.SERVER: fracta}})

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
            cache_read, cache_write = stream.number(cache.get("read")), stream.number(cache.get("write"))
            tokens_in = stream.number(tokens.get("input")) + cache_read + cache_write
            tokens_out = stream.number(tokens.get("output")) + stream.number(tokens.get("reasoning"))
            cost = part.get("cost")
            cost = cost if isinstance(cost, int | float) and not isinstance(cost, bool) and cost else None
            used = stream.usage(ts, tokens_in, tokens_out, cost, cache_read=cache_read, cache_write=cache_write)
            # Every step reports its own tokens: peek sums a run's steps into one line at its last
            # step (the one that stops rather than calls tools); the runner counts each step.
            last = part.get("reason") == "stop"
            events.append(dataclasses.replace(used, data={**used.data, "step": True, "last": last}))
        elif kind == "error":
            err = data.get("error")
            message = _error_text(err)
            events.append(OutputEvent(kind="error", text=stream.short(message), ts=ts, data={"message": message}))
        return events

    def finished_status(self, exit_code: int) -> str:
        return "idle" if exit_code == 0 else "failed"


def default_permission(tests: list[str]) -> dict[str, Any]:
    """OpenCode's `permission` block for an agent: its worktree, its git and test commands, nothing else."""
    commands = [*permissions.READ_COMMANDS, *permissions.GIT_COMMANDS, *tests]
    bash: dict[str, str] = {"*": "deny"}  # the last matching rule wins: the allowed ones come after
    for cmd in commands:
        bash[cmd] = bash[f"{cmd} *"] = "allow"
    return {
        "edit": "allow",  # inside the worktree; outside is external_directory's
        "bash": bash,
        "external_directory": "deny",
        "webfetch": "deny",
        "websearch": "deny",
    }


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
