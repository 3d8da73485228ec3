"""Runtime options from fracta.yaml (`agents.agent_runtimes.<runtime>`), checked once, and what the
three AI CLI adapters share: finding the binary, the gateway wiring, writing per-agent files.

Keys every AI CLI runtime takes (all optional; strings may use ${VAR}):
  binary        the executable: a name on PATH or a path (default: the runtime's own name)
  model         the model to ask for (passed as the CLI's model flag or setting)
  args          extra command-line arguments, put before the prompt
  env           extra environment variables for the agent (applied by the credential pipeline)
  auth_profile  the auth profile(s) to resolve at spawn (fracta/credentials.py)
Each adapter documents its own extra keys. `{{agent}}` in any of these strings (env's values too,
filled in by fracta/credentials.py) is replaced by the agent's name, e.g. to route each agent
through its own path of a model proxy.
"""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import atomic, config
from ..errors import ConfigError, FractaError
from .base import LaunchContext

COMMON = frozenset({"binary", "model", "args", "env", "auth_profile"})
PASSED_ON = frozenset({"env", "auth_profile"})  # read by fracta/credentials.py, not by the adapters
# fracta's tools an agent may call (the chessmaster's are hidden from agents by the gateway).
AGENT_TOOLS = ("fracta_inbox", "fracta_send", "fracta_set_intent", "fracta_list", "fracta_peek", "fracta_tools")
SERVER = "fracta"  # the MCP server's name in every per-agent config: tools become mcp__fracta__* etc.


@dataclass(frozen=True)
class Options:
    runtime: str
    binary: str
    model: str | None = None
    args: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # the adapter's own keys

    def key(self, name: str) -> str:
        return f"agents.agent_runtimes.{self.runtime}.{name}"


def parse(runtime: str, raw: Mapping[str, Any] | None, own: frozenset[str], agent: str = "") -> Options:
    """Check the option keys and types; an unknown key is an error naming it (typos never pass)."""
    where = f"agents.agent_runtimes.{runtime}"
    missing: list[str] = []
    raw = {
        k: v if k in PASSED_ON else _named(config.interpolate(v, os.environ, missing), agent)
        for k, v in (raw or {}).items()
    }
    if missing:
        raise ConfigError(
            f"{where} in fracta.yaml needs environment variable(s) {', '.join(sorted(set(missing)))}",
            "export them (or use ${VAR:-default}) and retry",
        )
    unknown = sorted(set(raw) - COMMON - own)
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} in {where} of fracta.yaml",
            f"the {runtime} runtime takes: {', '.join(sorted(COMMON | own))}",
        )
    binary = raw.get("binary") or runtime
    model = raw.get("model")
    args = raw.get("args") or []
    if not isinstance(binary, str) or (model is not None and not isinstance(model, str)):
        raise ConfigError(f"{where}.binary and .model in fracta.yaml must be strings")
    if not isinstance(args, list) or not all(isinstance(a, str | int | float) for a in args):
        raise ConfigError(f"{where}.args in fracta.yaml must be a list of strings", "e.g. args: [--verbose]")
    return Options(
        runtime=runtime,
        binary=os.path.expanduser(binary),
        model=model,
        args=[str(a) for a in args],
        extra={k: raw[k] for k in own if k in raw},
    )


def _named(value: Any, agent: str) -> Any:
    if isinstance(value, str):
        return value.replace("{{agent}}", agent)
    if isinstance(value, list):
        return [_named(v, agent) for v in value]
    if isinstance(value, Mapping):
        return {k: _named(v, agent) for k, v in value.items()}
    return value


def find_binary(ctx: LaunchContext, opts: Options) -> str:
    """The binary's full path; a clear error naming the runtime and the key to set if it is missing."""
    binary = opts.binary
    if os.sep in binary:
        path = Path(binary)
        if not path.is_absolute() and ctx.root is not None:
            path = ctx.root / path
        found = str(path) if path.is_file() and os.access(path, os.X_OK) else None
    else:
        found = shutil.which(binary)
    if found is None:
        raise FractaError(
            f"cannot find the {opts.runtime} CLI {binary!r} for agent {ctx.name!r}",
            f"install it, or set {opts.key('binary')} in fracta.yaml to its full path",
        )
    return found


def gateway(ctx: LaunchContext) -> tuple[str, dict[str, str]]:
    """The gateway's MCP URL and the headers carrying the agent's token."""
    if not ctx.gateway_url:
        raise FractaError(
            f"agent {ctx.name!r} cannot be wired to fracta: the gateway's URL is unknown",
            "start the control plane (fracta up) and spawn the agent again",
        )
    return ctx.gateway_url, {"Authorization": f"Bearer {ctx.token}"}


def write_private(path: Path, text: str) -> None:
    """A per-agent config file that holds the agent's token: 0600, replaced atomically.

    Not fsync'd: it is written afresh at every launch, right before the runtime reads it.
    """
    atomic.write_text(path, text, mode=0o600, durable=False)


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge of mappings: `over` wins; nested mappings merge, everything else is replaced."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def mapping(opts: Options, name: str) -> dict[str, Any]:
    value = opts.extra.get(name) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{opts.key(name)} in fracta.yaml must be a mapping")
    return dict(value)


def strings(opts: Options, name: str, default: list[str]) -> list[str]:
    value = opts.extra.get(name, default)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{opts.key(name)} in fracta.yaml must be a list of strings")
    return list(value)
