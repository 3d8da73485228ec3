"""Wiring fracta into the user's AI CLIs: `.mcp.json`, `.codex/config.toml`, `opencode.json`, and
Claude's project permissions in `.claude/settings.json`.

`fracta init` adds a `fracta` MCP server running `fracta serve` to each file at the repo root,
merging into what is there: other servers and keys are kept, an existing `fracta` entry is left
alone, and a file that cannot be parsed is refused untouched. Running it again changes nothing.

Codex passes a stdio MCP server only an allow-list of variables, so its entry forwards, by name
(`env_vars`), the provider variables agents need (fracta/environment.py), is `required` (Codex
otherwise asks the model before fracta's tools are listed) and gives `fracta serve` time to start
the control plane (`startup_timeout_sec`). Claude's settings allow fracta's tools
(`mcp__fracta`) and enable the `.mcp.json` server without a prompt; Claude applies them in a
workspace it trusts (in `-p` mode on an untrusted one, pass `--allowedTools mcp__fracta`).

JSON files are rewritten whole (2-space indent) only when something is added. TOML has no
writer in the standard library, so the `[mcp_servers.fracta]` table is appended as text; the
result is parsed again and must equal the original plus that one table, or nothing is written.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import atomic
from .errors import ConfigError, FractaError

SERVER = "fracta"
COMMAND = "fracta"
ARGS = ["serve"]
CODEX_STARTUP_TIMEOUT = 60  # seconds: the first `fracta serve` may start the control plane
CLAUDE_TOOLS = f"mcp__{SERVER}"  # a server prefix allows every tool of that server

# What each outcome means, for the init output.
CREATED = "created"  # the file did not exist
ADDED = "added"  # the fracta entry was merged into an existing file
PRESENT = "present"  # our entry was already there: nothing written
KEPT = "kept"  # a different `fracta` entry exists (the user's): left alone
UNFORWARDED = "unforwarded"  # our Codex entry is there but forwards not every variable: left alone


@dataclass(frozen=True)
class Wired:
    """What happened to one runtime's config file."""

    runtime: str  # claude | codex | opencode
    path: Path
    outcome: str | None  # created | added | present | kept | unforwarded; None when `error` is set
    error: FractaError | None = None
    what: str = "the fracta MCP server"

    def describe(self) -> str:
        where = (
            str(Path(self.path.parent.name, self.path.name))
            if self.path.parent.name.startswith(".")
            else self.path.name
        )
        if self.error is not None:
            return f"{where}: not changed: {self.error.message}"
        return {
            CREATED: f"{where}: created, with {self.what} for {self.runtime}",
            ADDED: f"{where}: added {self.what} for {self.runtime} (other entries kept)",
            PRESENT: f"{where}: {self.what} already there",
            KEPT: f"{where}: kept your own 'fracta' entry (it does not run `fracta serve`; left as it is)",
            UNFORWARDED: f"{where}: fracta MCP server already there, but its env_vars lacks variables "
            "agents may need (left as it is; see fracta doctor)",
        }[self.outcome or ""]


def wire(root: Path, forward: list[str]) -> list[Wired]:
    """Add fracta to each AI CLI's project config under `root`; a file's failure does not stop the others.

    `forward` names the variables Codex is to pass `fracta serve` (env_vars)."""
    targets: list[tuple[str, Path, Callable[[Path], str], str]] = [
        ("claude", root / ".mcp.json", _wire_claude, "the fracta MCP server"),
        ("claude", root / ".claude" / "settings.json", _wire_claude_settings, "fracta's tools, allowed,"),
        ("codex", root / ".codex" / "config.toml", lambda p: _wire_codex(p, forward), "the fracta MCP server"),
        ("opencode", root / "opencode.json", _wire_opencode, "the fracta MCP server"),
    ]
    done: list[Wired] = []
    for runtime, path, step, what in targets:
        try:
            done.append(Wired(runtime, path, step(path), what=what))
        except FractaError as exc:
            done.append(Wired(runtime, path, None, exc, what=what))
    return done


# --- Claude: .mcp.json, mcpServers.fracta ------------------------------------------------------


def claude_entry() -> dict[str, Any]:
    return {"command": COMMAND, "args": list(ARGS)}


def _wire_claude(path: Path) -> str:
    return _merge_json(path, "mcpServers", claude_entry(), lambda e: runs_serve(e.get("command"), e.get("args")), {})


def _wire_claude_settings(path: Path) -> str:
    """`permissions.allow` gets `mcp__fracta`, `enabledMcpjsonServers` gets `fracta` (each once)."""
    existed = path.exists()
    data = _load_json(path, f'permissions.allow = ["{CLAUDE_TOOLS}"]') if existed else {}
    permissions = data.setdefault("permissions", {})
    if not isinstance(permissions, dict):
        raise ConfigError(f"permissions in {path} is not a JSON object", f'add "{CLAUDE_TOOLS}" to permissions.allow')
    changed = False
    for holder, key, value in ((permissions, "allow", CLAUDE_TOOLS), (data, "enabledMcpjsonServers", SERVER)):
        items = holder.setdefault(key, [])
        if not isinstance(items, list):
            raise ConfigError(f"{key} in {path} is not a JSON list", f'make it one and add "{value}" to it')
        if value not in items:
            items.append(value)
            changed = True
    if not changed:
        return PRESENT
    if not existed:
        atomic.ensure_dirs(path.parent)
    _write(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return ADDED if existed else CREATED


# --- OpenCode: opencode.json, mcp.fracta -------------------------------------------------------


def opencode_entry() -> dict[str, Any]:
    return {"type": "local", "command": [COMMAND, *ARGS]}


def _wire_opencode(path: Path) -> str:
    def ours(entry: dict[str, Any]) -> bool:
        command = entry.get("command")
        return isinstance(command, list) and bool(command) and runs_serve(command[0], command[1:])

    fresh = {"$schema": "https://opencode.ai/config.json"}
    return _merge_json(path, "mcp", opencode_entry(), ours, fresh)


def _merge_json(
    path: Path, key: str, entry: dict[str, Any], ours: Callable[[dict[str, Any]], bool], fresh: dict[str, Any]
) -> str:
    existed = path.exists()
    data: dict[str, Any] = _load_json(path, f"{key}.{SERVER} = {json.dumps(entry)}") if existed else dict(fresh)
    servers = data.get(key)
    if servers is None:
        servers = data[key] = {}
    if not isinstance(servers, dict):
        raise ConfigError(f"{key} in {path} is not a JSON object", f"make it one and add {SERVER} to it by hand")
    if SERVER in servers:
        current = servers[SERVER]
        return PRESENT if isinstance(current, dict) and ours(current) else KEPT
    servers[SERVER] = entry
    _write(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return ADDED if existed else CREATED


# --- Codex: .codex/config.toml, [mcp_servers.fracta] -------------------------------------------


def codex_entry(forward: list[str]) -> dict[str, Any]:
    """The [mcp_servers.fracta] table, as data."""
    entry: dict[str, Any] = {"command": COMMAND, "args": list(ARGS)}
    if forward:
        entry["env_vars"] = sorted(set(forward))
    entry["required"] = True
    entry["startup_timeout_sec"] = CODEX_STARTUP_TIMEOUT
    return entry


def codex_table(forward: list[str]) -> str:
    """The [mcp_servers.fracta] table, as TOML text (one forwarded name a line)."""
    entry = codex_entry(forward)
    lines = [f"[mcp_servers.{SERVER}]", f'command = "{COMMAND}"', f"args = {json.dumps(ARGS)}"]
    if entry.get("env_vars"):
        lines.append("# Codex passes MCP servers only HOME, PATH and a few more: forward what agents need.")
        lines += ["env_vars = [", *(f"  {json.dumps(name)}," for name in entry["env_vars"]), "]"]
    # Without `required`, Codex sends its first model request before fracta's tools are listed.
    lines.append("required = true")
    lines.append(f"startup_timeout_sec = {CODEX_STARTUP_TIMEOUT}  # the first start may start fracta's control plane")
    return "\n".join(lines) + "\n"


def _wire_codex(path: Path, forward: list[str]) -> str:
    existed = path.exists()
    text = _read(path) if existed else ""
    table = codex_table(forward)
    before = _toml(path, text, table)
    servers = before.get("mcp_servers", {})
    if not isinstance(servers, dict):
        raise ConfigError(f"mcp_servers in {path} is not a table", f"add this by hand:\n{table}")
    if SERVER in servers:
        current = servers[SERVER]
        if not (isinstance(current, dict) and runs_serve(current.get("command"), current.get("args"))):
            return KEPT
        forwarded = current.get("env_vars")
        names = (
            {n if isinstance(n, str) else n.get("name") for n in forwarded} if isinstance(forwarded, list) else set()
        )
        return PRESENT if set(forward) <= names else UNFORWARDED
    if text and not text.endswith("\n"):
        text += "\n"
    updated = text + ("\n" if text.strip() else "") + table
    # Appending a table can clash with how the file is written (an inline `mcp_servers = {...}`,
    # say): check that the result reads as the original plus exactly our table.
    try:
        after = tomllib.loads(updated)
    except tomllib.TOMLDecodeError:
        after = None
    expected = {**before, "mcp_servers": {**servers, SERVER: codex_entry(forward)}}
    if after != expected:
        raise ConfigError(
            f"cannot add [mcp_servers.{SERVER}] to {path} safely (the way mcp_servers is written there)",
            f"add this by hand:\n{table}",
        )
    if not existed:
        atomic.ensure_dirs(path.parent)
    _write(path, updated)
    return ADDED if existed else CREATED


def forwarded_names(entry: dict[str, Any]) -> list[str]:
    """The variable names a Codex MCP server entry forwards (`env_vars`: names, or tables with one)."""
    found = entry.get("env_vars")
    items = found if isinstance(found, list) else []
    names = [item if isinstance(item, str) else item.get("name") if isinstance(item, dict) else None for item in items]
    return [n for n in names if isinstance(n, str)]


def _toml(path: Path, text: str, table: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc})", f"fix it, or add this to it by hand:\n{table}") from None


# --- shared ------------------------------------------------------------------------------------


def runs_serve(command: Any, args: Any) -> bool:
    """An entry that runs `fracta serve` (any path to fracta, any extra flags) is fracta's own."""
    if not isinstance(command, str) or not isinstance(args, list):
        return False
    return os.path.basename(command) == COMMAND and args[:1] == ARGS


def _load_json(path: Path, by_hand: str) -> dict[str, Any]:
    text = _read(path)
    try:
        loaded = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
            f"fix it (comments are not JSON), or add {by_hand} by hand",
        ) from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path} must hold a JSON object", f"add {by_hand} by hand")
    return loaded


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise ConfigError(f"cannot read {path}: {reason}", "fix the file or its permissions") from None


def _write(path: Path, text: str) -> None:
    try:
        mode = path.stat().st_mode & 0o777  # keep the user's permissions
    except FileNotFoundError:
        mode = 0o644
    atomic.write_text(path, text, mode=mode)
