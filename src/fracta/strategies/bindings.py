"""Binding a strategy's contract to data sources (fracta.yaml `strategies.bindings`), checked as a
whole before any step runs: every entry bound, its ${VAR}s set, its server and tool there, and
each required argument of the tool given by the binding or by the strategy."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import interpolate
from ..errors import ContractUnsatisfied
from ..repo import Repo
from .api import Data, Source, Strategy
from .sources import BUILTINS, FRACTA, Gateway

SEPARATOR = "__"  # as the gateway's proxy names a backend's tools


@dataclass(frozen=True)
class Bound:
    entry: str
    data: Data
    source: Source  # its ${VAR}s filled in

    @property
    def tool_name(self) -> str:
        """The name to call: fracta's own source, or `<server>__<tool>` at the gateway."""
        return (
            self.source.tool if self.source.server == FRACTA else f"{self.source.server}{SEPARATOR}{self.source.tool}"
        )


def configured(repo: Repo, strategy: str) -> dict[str, Any]:
    """The raw bindings of `strategy` in fracta.yaml (entry -> {server, tool, arguments})."""
    raw = (repo.config.get("strategies.bindings") or {}).get(strategy) or {}
    return dict(raw) if isinstance(raw, Mapping) else {}


async def resolve(
    repo: Repo, strategy: Strategy, gateway: Gateway | None, env: Mapping[str, str] | None = None
) -> dict[str, Bound]:
    """Each contract entry with its source; ContractUnsatisfied listing every entry that has none."""
    env = os.environ if env is None else env
    raw = configured(repo, strategy.name)
    missing: list[dict[str, str]] = []
    bound: dict[str, Bound] = {}
    for entry in sorted(set(raw) - set(strategy.requires)):
        missing.append({"entry": entry, "reason": "is bound in fracta.yaml but is not in the contract (a typo?)"})
    for entry, data in strategy.requires.items():
        source, reason = _source(raw.get(entry), data, env)
        if source is None:
            missing.append({"entry": entry, "reason": reason})
            continue
        reason = await _check(Bound(entry, data, source), gateway)
        if reason:
            missing.append({"entry": entry, "reason": reason})
        else:
            bound[entry] = Bound(entry, data, source)
    if missing:
        listing = "\n".join(f"  {m['entry']}: {m['reason']}" for m in missing)
        raise ContractUnsatisfied(
            f"the bindings cannot satisfy the contract of {strategy.name}; nothing was run:\n{listing}",
            f"bind each entry under strategies.bindings.{strategy.name} in fracta.yaml "
            "(server, tool, arguments; docs/strategies.md), then fracta down && fracta up",
            details={"strategy": strategy.name, "missing": missing},
        )
    return bound


def _source(raw: Any, data: Data, env: Mapping[str, str]) -> tuple[Source | None, str]:
    if raw is None:
        if data.default is not None:
            return data.default, ""
        return None, "no binding in fracta.yaml"
    missing: list[str] = []
    filled = interpolate(dict(raw), env, missing)
    if missing:
        return None, f"its binding needs environment variable(s) {', '.join(sorted(set(missing)))}, not set"
    return Source(str(filled["server"]), str(filled["tool"]), dict(filled.get("arguments") or {})), ""


async def _check(bound: Bound, gateway: Gateway | None) -> str:
    """Why `bound` cannot be fetched, or ""."""
    source = bound.source
    given = set(source.arguments) | set(bound.data.args)
    if source.server == FRACTA:
        builtin = BUILTINS.get(source.tool)
        if builtin is None:
            return f"fracta has no source {source.tool!r} (it has: {', '.join(BUILTINS)})"
        required: set[str] = set(builtin.required)
        accepted = set(builtin.required) | set(builtin.optional)
    else:
        assert gateway is not None
        tools = await gateway.tools()
        tool = tools.get(bound.tool_name)
        if tool is None:
            offered = sorted(n.partition(SEPARATOR)[2] for n in tools if n.startswith(source.server + SEPARATOR))
            if not offered:
                return (
                    f"the MCP server {source.server!r} offers no tools at the gateway "
                    "(not in mcp_servers, skipped for an unset variable, or down: see fracta doctor)"
                )
            return f"the MCP server {source.server!r} has no tool {source.tool!r} (it has: {', '.join(offered)})"
        schema = tool.input_schema or {}
        required = {str(r) for r in schema.get("required") or []}
        props = schema.get("properties")
        accepted = set(props) if isinstance(props, Mapping) else given
    if unknown := sorted(given - accepted):
        return f"{bound.tool_name} takes no argument(s) {', '.join(unknown)} (it takes: {', '.join(sorted(accepted))})"
    if lacking := sorted(required - given):
        return (
            f"{bound.tool_name} requires argument(s) {', '.join(lacking)}, given neither by the binding's "
            "`arguments` nor by the strategy"
        )
    return ""
