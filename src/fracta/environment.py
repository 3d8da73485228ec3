"""The environment the control plane runs in and hands its agents: a decision, not an accident.

An agent inherits the control plane's environment (plus what fracta.yaml adds), so the control
plane's environment is what matters, and it comes from whatever started it: `fracta up` or
`fracta spawn` in your shell, or `fracta serve` under your AI CLI. Those CLIs do not all pass their
MCP servers the same environment: Claude Code and OpenCode pass theirs whole; Codex passes an
allow-list (HOME, PATH, LANG, SHELL, TERM, TMPDIR, CA variables) plus the names its
`mcp_servers.<name>.env_vars` forwards. So:

- `fracta init` writes into `.codex/config.toml` an `env_vars` list of every provider variable
  fracta knows (PROVIDER_VARS) and every variable fracta.yaml names: under Codex the control plane
  gets the same provider variables as from your shell.
- The control plane starts with PATH entries that do not exist dropped, and Codex's session
  folder (it puts a temporary folder of helper aliases on its servers' PATH and removes it when it
  exits); each spawn drops entries that vanished since (a folder that reappears may be anyone's).
  The starter's FRACTA_* variables are not passed on (FRACTA_DATABASE_URL, configuration, is).
- A variable fracta.yaml names for a runtime (`${VAR}` in its env, an env resolver) and the
  control plane lacks fails the spawn, naming it and how to provide it.
- control.json records the control plane's PATH and the names (never the values) of its
  variables, so `fracta doctor` checks what `spawn` will really use.

Light module: no heavy imports (doctor and the CLI read it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# The variables each AI CLI reads to find its provider and credentials (names only; fracta never
# needs their values). A user's own variables beyond these are forwarded by naming them in
# fracta.yaml (agents.agent_runtimes.<runtime>.env: {NAME: ${NAME}}).
_AWS = ("AWS_PROFILE", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
PROVIDER_VARS: dict[str, tuple[str, ...]] = {
    "claude": (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_MODEL",
        "ANTHROPIC_CUSTOM_HEADERS",
        "CLAUDE_CODE_OAUTH_TOKEN",
        "CLAUDE_CODE_USE_BEDROCK",
        "CLAUDE_CODE_USE_VERTEX",
        "ANTHROPIC_VERTEX_PROJECT_ID",
        "CLOUD_ML_REGION",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "AWS_BEARER_TOKEN_BEDROCK",
        *_AWS,
    ),
    "codex": ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "CODEX_HOME"),
    "opencode": (
        "OPENCODE_CONFIG",
        "ANTHROPIC_API_KEY",
        "OPENAI_API_KEY",
        "OPENROUTER_API_KEY",
        "GEMINI_API_KEY",
        "GOOGLE_GENERATIVE_AI_API_KEY",
        "GROQ_API_KEY",
        "AWS_BEARER_TOKEN_BEDROCK",
        *_AWS,
    ),
}
# What every CLI needs to reach its provider through a corporate network.
NETWORK_VARS = ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy", "NODE_EXTRA_CA_CERTS")


def known_names() -> list[str]:
    """Every provider and network variable fracta knows, sorted, without repeats."""
    names = {n for group in PROVIDER_VARS.values() for n in group} | set(NETWORK_VARS)
    return sorted(names)


def provider_names(runtime: str) -> tuple[str, ...]:
    return PROVIDER_VARS.get(runtime, ())


# --- PATH ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CleanPath:
    value: str  # the PATH to use
    dropped: list[str]  # the entries left out (missing folders, relative entries)


# Folders an AI CLI puts on its children's PATH for its own session and removes when it exits:
# Codex's helper aliases (apply_patch, its sandbox), $CODEX_HOME/tmp/arg0*/codex-arg0XXXXXX.
SESSION_FOLDERS = (re.compile(r"/tmp/arg0[^/]*/codex-arg0[^/]*/?$"),)


def clean_path(path: str | None) -> CleanPath:
    """`path` without entries that are not existing absolute folders, nor an AI CLI's session
    folder (SESSION_FOLDERS), and without repeats."""
    kept: list[str] = []
    dropped: list[str] = []
    for entry in (path or "").split(os.pathsep):
        if not entry:
            continue
        # "." or "bin" would follow whatever folder a command runs in; a vanished folder may
        # reappear as anyone's; a CLI's session folder vanishes when the CLI exits.
        if not os.path.isabs(entry) or not os.path.isdir(entry) or any(p.search(entry) for p in SESSION_FOLDERS):
            dropped.append(entry)
        elif entry not in kept:
            kept.append(entry)
    return CleanPath(os.pathsep.join(kept), dropped)


# Passed on although FRACTA_*: the documented variable for state.url (fracta.yaml), which is
# configuration, not identity.
PASSED_ON = frozenset({"FRACTA_DATABASE_URL"})


def for_control_plane(env: Mapping[str, str]) -> dict[str, str]:
    """The environment to start the control plane with: `env` with its PATH cleaned and without
    FRACTA_* variables (a `fracta serve` inside an agent carries that agent's identity, which is
    never the control plane's, nor its agents'), but for PASSED_ON."""
    out = {k: v for k, v in env.items() if not k.startswith("FRACTA_") or k in PASSED_ON}
    if "PATH" in out:
        out["PATH"] = clean_path(out["PATH"]).value
    return out


# --- what control.json records -------------------------------------------------------------------


def summary(env: Mapping[str, str]) -> dict[str, Any]:
    """The PATH and the variable names of `env`, never a value: safe to write to control.json."""
    return {"path": [p for p in env.get("PATH", "").split(os.pathsep) if p], "names": sorted(env)}


@dataclass(frozen=True)
class SpawnEnvironment:
    """The environment a spawn will use: whose it is, its PATH and its variable names."""

    source: str  # "the control plane's (pid N)" or "this shell's"
    path: list[str]
    names: frozenset[str]
    of_control_plane: bool

    @property
    def path_string(self) -> str:
        return os.pathsep.join(self.path)


def from_record(record: Mapping[str, Any], pid: int) -> SpawnEnvironment | None:
    """The environment control.json describes, or None if it holds none (an older control plane)."""
    data = record.get("environment")
    if not isinstance(data, Mapping):
        return None
    path, names = data.get("path"), data.get("names")
    if not isinstance(path, list) or not isinstance(names, list):
        return None
    return SpawnEnvironment(
        f"the control plane's (pid {pid})", [str(p) for p in path], frozenset(str(n) for n in names), True
    )


def of_this_process(env: Mapping[str, str] | None = None) -> SpawnEnvironment:
    env = os.environ if env is None else env
    data = summary(env)
    return SpawnEnvironment("this shell's", data["path"], frozenset(data["names"]), False)


def missing_from(wanted: Iterable[str], have: Iterable[str]) -> list[str]:
    present = set(have)
    return sorted({n for n in wanted if n not in present})


def missing_hint(names: list[str]) -> str:
    """How to give the control plane variables it lacks (agents inherit its environment)."""
    shown = " ".join(f"{n}=..." for n in names)
    listed = ", ".join(f'"{n}"' for n in names)
    return (
        "agents inherit the control plane's environment, which comes from whatever started it. "
        f"From your shell: fracta down; export {shown}; fracta up. "
        "Under Codex (which passes its MCP servers only a few variables): forward them with "
        f"env_vars = [{listed}] in [mcp_servers.fracta] of .codex/config.toml, then restart the "
        "control plane (fracta down)"
    )
