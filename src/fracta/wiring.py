"""Wiring fracta into the user's AI CLIs: `.mcp.json`, `.codex/config.toml` and `opencode.json`.

`fracta init` adds a `fracta` MCP server running `fracta serve` to each file at the repo root,
merging into what is there: other servers and keys are kept, an existing `fracta` entry is left
alone, and a file that cannot be parsed is refused untouched. Running it again changes nothing.

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

# What each outcome means, for the init output.
CREATED = "created"  # the file did not exist
ADDED = "added"  # the fracta entry was merged into an existing file
PRESENT = "present"  # our entry was already there: nothing written
KEPT = "kept"  # a different `fracta` entry exists (the user's): left alone


@dataclass(frozen=True)
class Wired:
    """What happened to one runtime's config file."""

    runtime: str  # claude | codex | opencode
    path: Path
    outcome: str | None  # created | added | present | kept; None when `error` is set
    error: FractaError | None = None

    def describe(self) -> str:
        where = self.path.name if self.path.parent.name != ".codex" else ".codex/config.toml"
        if self.error is not None:
            return f"{where}: not changed: {self.error.message}"
        return {
            CREATED: f"{where}: created, with the fracta MCP server for {self.runtime}",
            ADDED: f"{where}: added the fracta MCP server for {self.runtime} (other entries kept)",
            PRESENT: f"{where}: fracta MCP server already there",
            KEPT: f"{where}: kept your own 'fracta' entry (it does not run `fracta serve`; left as it is)",
        }[self.outcome or ""]


def wire(root: Path) -> list[Wired]:
    """Add fracta to each AI CLI's project config under `root`; a file's failure does not stop the others."""
    targets: list[tuple[str, Path, Callable[[Path], str]]] = [
        ("claude", root / ".mcp.json", _wire_claude),
        ("codex", root / ".codex" / "config.toml", _wire_codex),
        ("opencode", root / "opencode.json", _wire_opencode),
    ]
    done: list[Wired] = []
    for runtime, path, step in targets:
        try:
            done.append(Wired(runtime, path, step(path)))
        except FractaError as exc:
            done.append(Wired(runtime, path, None, exc))
    return done


# --- Claude: .mcp.json, mcpServers.fracta ------------------------------------------------------


def claude_entry() -> dict[str, Any]:
    return {"command": COMMAND, "args": list(ARGS)}


def _wire_claude(path: Path) -> str:
    return _merge_json(path, "mcpServers", claude_entry(), lambda e: _runs_serve(e.get("command"), e.get("args")), {})


# --- OpenCode: opencode.json, mcp.fracta -------------------------------------------------------


def opencode_entry() -> dict[str, Any]:
    return {"type": "local", "command": [COMMAND, *ARGS]}


def _wire_opencode(path: Path) -> str:
    def ours(entry: dict[str, Any]) -> bool:
        command = entry.get("command")
        return isinstance(command, list) and bool(command) and _runs_serve(command[0], command[1:])

    fresh = {"$schema": "https://opencode.ai/config.json"}
    return _merge_json(path, "mcp", opencode_entry(), ours, fresh)


def _merge_json(
    path: Path, key: str, entry: dict[str, Any], ours: Callable[[dict[str, Any]], bool], fresh: dict[str, Any]
) -> str:
    existed = path.exists()
    data: dict[str, Any] = dict(fresh)
    if existed:
        text = _read(path)
        try:
            loaded = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
                f"fix it (comments are not JSON), or add {key}.{SERVER} = {json.dumps(entry)} by hand",
            ) from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path} must hold a JSON object", f"add {key}.{SERVER} = {json.dumps(entry)} by hand")
        data = loaded
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


def codex_table() -> str:
    return f'[mcp_servers.{SERVER}]\ncommand = "{COMMAND}"\nargs = {json.dumps(ARGS)}\n'


def _wire_codex(path: Path) -> str:
    existed = path.exists()
    text = _read(path) if existed else ""
    before = _toml(path, text)
    servers = before.get("mcp_servers", {})
    if not isinstance(servers, dict):
        raise ConfigError(f"mcp_servers in {path} is not a table", f"add this by hand:\n{codex_table()}")
    if SERVER in servers:
        current = servers[SERVER]
        ok = isinstance(current, dict) and _runs_serve(current.get("command"), current.get("args"))
        return PRESENT if ok else KEPT
    if text and not text.endswith("\n"):
        text += "\n"
    updated = text + ("\n" if text.strip() else "") + codex_table()
    # Appending a table can clash with how the file is written (an inline `mcp_servers = {...}`,
    # say): check that the result reads as the original plus exactly our table.
    try:
        after = tomllib.loads(updated)
    except tomllib.TOMLDecodeError:
        after = None
    expected = {**before, "mcp_servers": {**servers, SERVER: {"command": COMMAND, "args": ARGS}}}
    if after != expected:
        raise ConfigError(
            f"cannot add [mcp_servers.{SERVER}] to {path} safely (the way mcp_servers is written there)",
            f"add this by hand:\n{codex_table()}",
        )
    if not existed:
        atomic.ensure_dirs(path.parent)
    _write(path, updated)
    return ADDED if existed else CREATED


def _toml(path: Path, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{path} is not valid TOML ({exc})", f"fix it, or add this to it by hand:\n{codex_table()}"
        ) from None


# --- shared ------------------------------------------------------------------------------------


def _runs_serve(command: Any, args: Any) -> bool:
    """An entry that runs `fracta serve` (any path to fracta, any extra flags) is fracta's own."""
    if not isinstance(command, str) or not isinstance(args, list):
        return False
    return os.path.basename(command) == COMMAND and args[:1] == ARGS


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
