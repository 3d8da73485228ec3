"""The `codex` runtime: `codex exec --json`, with its own CODEX_HOME under the agent's folder.

CODEX_HOME=<agent dir>/codex-home holds a config.toml built from the user's own config.toml
(their model and provider settings; their MCP servers left out, fracta's gateway proxies those),
fracta's headless defaults, the `config` option, and the gateway with the agent's token. The
user's auth.json is linked in, so their login keeps working; their files are never changed.

Options (agents.agent_runtimes.codex), besides binary, model, args, env and auth_profile:
  config               a mapping merged into config.toml, e.g. {model_provider: x,
                       model_providers: {x: {base_url: ..., env_key: ..., wire_api: responses}}}
  inherit_user_config  start from the user's config.toml (default true)
  native               run the native binary behind npm's `codex` launcher, skipping Node's start
                       (default true; see codex_native.py)

The sandbox (seen with codex 0.169 on Linux, where it is bubblewrap plus seccomp). fracta writes
`sandbox_mode = "workspace-write"`, `approval_policy = "never"` and `allow_login_shell = false`,
and in [sandbox_workspace_write] the writable_roots from codex_sandbox.py, `exclude_slash_tmp =
true`, `network_access = false`; the agent's TMPDIR is <agent dir>/tmp. What that gives an agent:
- Writable: its worktree; its worktree's git folder (<repo>/.git/worktrees/<id>: index, HEAD,
  ORIG_HEAD, MERGE_HEAD, logs/HEAD); .git/objects; .git/refs/heads/feature/ and
  .git/logs/refs/heads/feature/ (its branch's ref and reflog); its TMPDIR. So `git add`, `git
  commit`, `git merge main` work in its worktree. Everything else is read-only: the user's
  checkout, other agents' worktrees and git folders, refs/heads/main, .git/config, hooks, $HOME,
  /tmp. Codex itself also keeps `.git`, `.codex`, `.agents` inside any writable root read-only.
- Why these roots: Codex keeps any `.git` inside a writable root read-only, and for a linked
  worktree it follows the `.git` file and makes that worktree's git folder read-only too, so
  `<repo>/.git` as a writable root is not enough (index.lock: Read-only file system); a root
  naming the worktree's git folder itself wins. Each of the four is needed (without any one,
  commit fails). A root must be a folder: a file as root makes every command fail at bubblewrap's
  set-up. A root that does not exist is skipped without a word.
- Left writable by necessity: other agents' branch refs under refs/heads/feature/ (git locks a
  ref by creating <ref>.lock in its folder), and .git/objects (an agent could delete objects).
  Not possible there: `git stash`, `git tag`, new branches outside feature/ (refs/ is read-only).
- Reads are not restricted (the whole disk, .fracta/ included), as in Codex's default.
- Network is off inside the sandbox, loopback included (connect: Operation not permitted): the
  post-commit hook and the fracta CLI cannot reach the control plane from an agent's commands;
  fracta's MCP tools work because Codex itself, outside the sandbox, calls the gateway.
- Commands run as `/bin/bash -c`: a login shell (`-lc`, Codex's default) runs /etc/profile, which
  on Debian resets PATH to the system folders, hiding a venv's python and fracta.
- A refused tool call (a patch outside the writable roots, `sandbox_permissions =
  "require_escalated"` under approval_policy never, `login: true` when login shells are off)
  produces no event in `codex exec --json`, only an ERROR line on stderr; parse() turns that line
  into an error event. A command the sandbox stops (Read-only file system) is an ordinary
  command_execution item with its output and exit code.
- Codex's tools, as offered to the model: `exec_command` {"cmd": str, "workdir"?, "login"?,
  "tty"?, "sandbox_permissions"?, "justification"?, ...} runs a shell command; a `cmd` that is an
  `apply_patch <<'EOF' ... EOF` heredoc is applied by Codex itself (a file_change item), checked
  against the writable roots (no separate apply_patch tool was offered, with `fake-model` or
  `gpt-5.1-codex` as the model). MCP tools come in a namespace (`mcp__fracta`).
- The user's config.toml is the base, less `default_permissions` and `[permissions]`: with a
  permission profile there, Codex 0.169 ignores sandbox_mode and writable_roots (commit fails
  again). Set in fracta.yaml's `config`, a profile is the user's choice and replaces all of this.
- bubblewrap comes inside the npm package (codex-resources/bwrap) and needs user namespaces.
The knob: `config` in fracta.yaml, e.g. {sandbox_workspace_write: {writable_roots: [/srv/cache],
network_access: true}} to widen (roots given add to fracta's), {sandbox_mode: read-only} to
narrow, {sandbox_mode: danger-full-access} to turn the sandbox off.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from . import codex_native, codex_sandbox, options, prompt, stream
from .base import Launch, LaunchContext, OutputEvent

OWN = frozenset({"config", "inherit_user_config", "native"})
HOME_DIR = "codex-home"


class CodexRuntime:
    name = "codex"
    resumable = True

    def check(self, ctx: LaunchContext) -> None:
        opts = options.parse(self.name, ctx.options, OWN, ctx.name)
        options.find_binary(ctx, opts)
        options.mapping(opts, "config")
        _native(opts)

    def launch(self, ctx: LaunchContext) -> Launch:
        opts = options.parse(self.name, ctx.options, OWN, ctx.name)
        binary = options.find_binary(ctx, opts)
        home = ctx.agent_dir / HOME_DIR
        home.mkdir(mode=0o700, exist_ok=True)
        user_home = Path(os.environ.get("CODEX_HOME") or Path.home() / ".codex")
        config = self._config(ctx, opts, user_home)
        options.write_private(home / "config.toml", dumps(config))
        _link_auth(user_home, home)
        native = codex_native.resolve(binary) if _native(opts) else codex_native.Binary(binary)
        argv = [native.path, "exec"]
        if ctx.session_id:
            argv.append("resume")
        argv += ["--json", "--skip-git-repo-check"]
        if opts.model:
            argv += ["--model", opts.model]
        argv += opts.args
        if ctx.session_id:
            argv.append(ctx.session_id)
        argv.append(prompt.for_launch(ctx))
        tmp = codex_sandbox.agent_tmp(ctx.agent_dir)
        env = {**native.env, "CODEX_HOME": str(home), "TMPDIR": str(tmp)}
        return Launch(argv=argv, env=env, cwd=ctx.workspace)

    def _config(self, ctx: LaunchContext, opts: options.Options, user_home: Path) -> dict[str, Any]:
        url, headers = options.gateway(ctx)
        base: dict[str, Any] = {}
        if opts.extra.get("inherit_user_config", True):
            base = codex_sandbox.user_settings(_user_config(user_home / "config.toml"))
            base.pop("mcp_servers", None)  # the user's servers reach agents through fracta's gateway
        roots = codex_sandbox.git_roots(ctx.workspace, ctx.branch)
        defaults: dict[str, Any] = {
            "approval_policy": "never",  # headless: nobody is there to approve
            **codex_sandbox.defaults(roots),
            "check_for_update_on_startup": False,
            "features": {"plugins": False},  # otherwise it clones a plugins repository at start
            "analytics": {"enabled": False},
        }
        if opts.model:
            defaults["model"] = opts.model
        # required: without it codex sends its first model request before fracta's tools are listed
        fracta = {"url": url, "http_headers": headers, "default_tools_approval_mode": "approve", "required": True}
        extra = options.mapping(opts, "config")
        config = options.merge(options.merge(base, defaults), extra)
        given = {str(user_home / "config.toml"): base, f"{opts.key('config')} in fracta.yaml": extra}
        config = codex_sandbox.keep_roots(config, given, roots)
        return options.merge(config, {"mcp_servers": {options.SERVER: fracta}})

    def parse(self, record: dict[str, Any]) -> list[OutputEvent]:
        data = stream.decode(record)
        if data is None:
            return _other_line(record)
        ts = record.get("ts")
        kind = data.get("type")
        if kind == "thread.started" and data.get("thread_id"):
            session = str(data["thread_id"])
            return [OutputEvent(kind="session", text=f"session {session}", ts=ts, data={"session_id": session})]
        if kind in ("item.started", "item.completed") and isinstance(data.get("item"), dict):
            return _item(data["item"], ts, done=kind == "item.completed")
        if kind == "turn.completed":
            use = data.get("usage") or {}
            tokens_in, tokens_out = stream.number(use.get("input_tokens")), stream.number(use.get("output_tokens"))
            # OpenAI's input_tokens count the cached ones too (cached_input_tokens is a part of them).
            read, wrote = (
                stream.number(use.get("cached_input_tokens")),
                stream.number(use.get("cache_write_input_tokens")),
            )
            return [stream.usage(ts, tokens_in, tokens_out, cache_read=read, cache_write=wrote)]
        if kind in ("turn.failed", "error"):
            err = data.get("error")
            message = _api_message(
                str(err.get("message") if isinstance(err, dict) else data.get("message") or err or kind)
            )
            return [OutputEvent(kind="error", text=stream.short(message), ts=ts, data={"message": message})]
        return []

    def finished_status(self, exit_code: int) -> str:
        return "idle" if exit_code == 0 else "failed"


def _item(item: dict[str, Any], ts: Any, *, done: bool) -> list[OutputEvent]:
    kind = item.get("type")
    ident = item.get("id")
    if kind == "agent_message" and done:
        return [OutputEvent(kind="text", text=stream.short(str(item.get("text", ""))), ts=ts)]
    if kind == "mcp_tool_call":
        name = str(item.get("tool", ""))
        full = f"{item.get('server')}__{name}" if item.get("server") not in (None, options.SERVER) else name
        if not done:
            text = stream.call_text(full, item.get("arguments"))
            return [
                OutputEvent(
                    kind="tool_call", text=text, ts=ts, data={"id": ident, "name": full, "input": item.get("arguments")}
                )
            ]
        err = item.get("error")
        failed = bool(err) or item.get("status") == "failed"
        result = item.get("result") or {}
        text = (
            _error_text(err)
            if err
            else stream.content_text(result.get("content") if isinstance(result, dict) else result)
        )
        payload = {"id": ident, "name": full, "is_error": failed}
        return [OutputEvent(kind="tool_result", text=stream.result_text(text, failed), ts=ts, data=payload)]
    if kind == "command_execution":
        command = shell_command(str(item.get("command", "")))
        if not done:
            return [
                OutputEvent(
                    kind="tool_call",
                    text=f"shell({stream.short(command, stream.MAX_ARG)!r})",
                    ts=ts,
                    data={"id": ident, "name": "shell", "input": command},
                )
            ]
        output = stream.short(str(item.get("aggregated_output", "")))
        code = item.get("exit_code")
        failed = code not in (0, None) or item.get("status") == "failed"
        text = (f"exit {code}: {output}" if output else f"exit {code}") if failed else output or f"exit {code}"
        payload = {"id": ident, "name": "shell", "is_error": failed, "exit_code": code}
        return [OutputEvent(kind="tool_result", text=text, ts=ts, data=payload)]
    if kind == "file_change" and done:
        changes = item.get("changes") or []
        files = ", ".join(f"{c.get('kind')} {c.get('path')}" for c in changes if isinstance(c, dict))
        return [
            OutputEvent(
                kind="tool_result",
                text=f"changed: {files}",
                ts=ts,
                data={"id": ident, "name": "file_change", "is_error": False},
            )
        ]
    if kind == "error":
        message = str(item.get("message", "error"))
        return [OutputEvent(kind="error", text=stream.short(message), ts=ts, data={"message": message})]
    return []


# Codex's log lines on stderr, e.g. `2026-12-02T17:37:12.62Z ERROR codex_core::tools::router: error=...`
_LOG = re.compile(r"^\d{4}-\d\d-\d\dT\S+\s+(?P<level>ERROR|WARN)\s+(?P<target>[\w:]+): (?P<message>.*)$")
_STDIN_NOTE = "Reading additional input from stdin"  # printed on every run, stdin being closed


def _other_line(record: dict[str, Any]) -> list[OutputEvent]:
    """A line that is not one of `codex exec --json`'s events: noise, a log line, or plain text.

    A tool call Codex refuses (a patch outside the writable roots, an escalation asked for under
    approval_policy never, a bad argument) produces no JSON event at all, only an ERROR log line
    from its tool router: that line becomes an error event, so `peek` shows why nothing happened.
    """
    text = str(record.get("line", ""))
    if record.get("stream") == "stderr":
        if text.startswith(_STDIN_NOTE):
            return []
        found = _LOG.match(text)
        if found and found["level"] == "ERROR":
            message = found["message"].removeprefix("error=")
            if found["target"].endswith("tools::router"):
                message = f"tool call not run: {message}"
            return [
                OutputEvent(kind="error", text=stream.short(message), ts=record.get("ts"), data={"message": message})
            ]
    return [stream.line(record)]


def shell_command(command: str) -> str:
    """The command itself out of Codex's `/bin/bash -lc '<command>'` (or `-c`) wrapper."""
    try:
        argv = shlex.split(command)
    except ValueError:
        return command
    shells = ("bash", "sh", "zsh", "dash")
    if len(argv) == 3 and os.path.basename(argv[0]) in shells and argv[1] in ("-c", "-lc"):
        return argv[2]
    return command


def _api_message(message: str) -> str:
    """The provider's own message when codex passes on its JSON error body, else `message`."""
    try:
        body = json.loads(message)
    except json.JSONDecodeError:
        return message
    err = body.get("error") if isinstance(body, dict) else None
    return str(err["message"]) if isinstance(err, dict) and err.get("message") else message


def _error_text(err: Any) -> str:
    return str(err.get("message", err)) if isinstance(err, dict) else str(err)


def _native(opts: options.Options) -> bool:
    value = opts.extra.get("native", True)
    if not isinstance(value, bool):
        raise ConfigError(
            f"{opts.key('native')} in fracta.yaml must be true or false, not {value!r}",
            "true runs Codex's native binary directly; false runs the configured binary as it is",
        )
    return value


def _user_config(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"your Codex config {path} is not valid TOML ({exc}), so an agent cannot start from it",
            "fix it, or set agents.agent_runtimes.codex.inherit_user_config: false in fracta.yaml",
        ) from None


def _link_auth(user_home: Path, home: Path) -> None:
    """Let the agent's Codex use the user's login (auth.json) without copying the secret around."""
    source, target = user_home / "auth.json", home / "auth.json"
    if source.is_file() and not (target.exists() or target.is_symlink()):
        with contextlib.suppress(FileExistsError):
            target.symlink_to(source)


# --- a small TOML writer: config.toml needs strings, numbers, booleans, lists and tables ------

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE.match(key) else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON's escapes are valid in a TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(str(k))} = {_value(v)}" for k, v in value.items()) + " }"
    raise ConfigError(f"cannot write {value!r} into Codex's config.toml", "use strings, numbers, lists and mappings")


def dumps(data: dict[str, Any], path: tuple[str, ...] = ()) -> str:
    """TOML text for `data`: scalars first, then one [table] per nested mapping."""
    lines = [f"{_key(str(k))} = {_value(v)}" for k, v in data.items() if not isinstance(v, dict) and v is not None]
    out = ""
    if lines or not path:
        header = f"[{'.'.join(_key(p) for p in path)}]\n" if path else ""
        out = header + "".join(line + "\n" for line in lines)
    for key, value in data.items():
        if isinstance(value, dict):
            out += ("\n" if out else "") + dumps(value, (*path, str(key)))
    return out
