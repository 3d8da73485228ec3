"""Tokens and cost: what an agent's runs used, added up from its runtime's usage events, priced.

A runtime's usage event (runtimes/stream.usage) carries input, output, cache-read and
cache-write tokens, and the cost when the runtime reports one (Claude Code, OpenCode with a
priced model). When it does not (Codex, an unpriced model), the cost is estimated from the
`pricing` table of fracta.yaml (USD per million tokens, by model name), and marked estimated.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# USD per million tokens. The keys match a model name exactly, or as its longest prefix (so
# "claude-sonnet-4" prices "claude-sonnet-4-5-20250929"); a "provider/" prefix is ignored.
DEFAULT_PRICES: dict[str, dict[str, float]] = {
    "claude-opus-4": {"input": 15.0, "output": 75.0, "cache_read": 1.5, "cache_write": 18.75},
    "claude-sonnet-4": {"input": 3.0, "output": 15.0, "cache_read": 0.3, "cache_write": 3.75},
    "claude-haiku-4": {"input": 1.0, "output": 5.0, "cache_read": 0.1, "cache_write": 1.25},
    "gpt-5": {"input": 1.25, "output": 10.0, "cache_read": 0.125, "cache_write": 0.0},
    "gpt-5-mini": {"input": 0.25, "output": 2.0, "cache_read": 0.025, "cache_write": 0.0},
    "gpt-4.1": {"input": 2.0, "output": 8.0, "cache_read": 0.5, "cache_write": 0.0},
    "o3": {"input": 2.0, "output": 8.0, "cache_read": 0.5, "cache_write": 0.0},
}
KINDS = ("input", "output", "cache_read", "cache_write")


@dataclass(frozen=True)
class Usage:
    """Tokens by kind (input is uncached input), the cost in USD (None: unknown), and whether
    any of that cost was estimated from the price table rather than reported by the runtime."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    cost_usd: float | None = None
    estimated: bool = False
    model: str | None = None

    @property
    def total(self) -> int:
        return self.input + self.output + self.cache_read + self.cache_write

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "total": self.total}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Usage:
        if not data:
            return cls()
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def __add__(self, other: Usage) -> Usage:
        costs = [c for c in (self.cost_usd, other.cost_usd) if c is not None]
        return Usage(
            input=self.input + other.input,
            output=self.output + other.output,
            cache_read=self.cache_read + other.cache_read,
            cache_write=self.cache_write + other.cache_write,
            cost_usd=round(sum(costs), 8) if costs else None,
            estimated=self.estimated or other.estimated,
            model=other.model or self.model,
        )


def from_event(data: Mapping[str, Any], model: str | None, prices: Mapping[str, Mapping[str, float]]) -> Usage:
    """One usage event's `data` (runtimes/stream.usage) as Usage, its cost estimated if not reported."""
    cache_read = int(data.get("cache_read_tokens") or 0)
    cache_write = int(data.get("cache_write_tokens") or 0)
    fresh = max(0, int(data.get("input_tokens") or 0) - cache_read - cache_write)
    used = Usage(fresh, int(data.get("output_tokens") or 0), cache_read, cache_write, model=model)
    reported = data.get("cost_usd")
    if isinstance(reported, int | float) and not isinstance(reported, bool) and reported > 0:
        return dataclasses.replace(used, cost_usd=float(reported))
    return price(used, prices)


def price(used: Usage, prices: Mapping[str, Mapping[str, float]]) -> Usage:
    """`used` with its cost from the price table, when its model is in it (else cost unknown)."""
    rates = rates_for(used.model, prices)
    if rates is None:
        return used if used.total else dataclasses.replace(used, cost_usd=0.0)
    cost = sum(getattr(used, kind) * float(rates.get(kind, 0.0)) for kind in KINDS) / 1e6
    return dataclasses.replace(used, cost_usd=round(cost, 8), estimated=used.total > 0)


def rates_for(model: str | None, prices: Mapping[str, Mapping[str, float]]) -> Mapping[str, float] | None:
    if not model:
        return None
    bare = model.rsplit("/", 1)[-1].lower()
    for name in (model.lower(), bare):
        if name in prices:
            return prices[name]
    matches = [key for key in prices if bare.startswith(key.lower())]
    return prices[max(matches, key=len)] if matches else None


def table(configured: Mapping[str, Any] | None) -> dict[str, dict[str, float]]:
    """The price table in force: the defaults, with fracta.yaml's `pricing` over them."""
    merged = {k: dict(v) for k, v in DEFAULT_PRICES.items()}
    for model, rates in (configured or {}).items():
        merged[str(model).lower()] = {**merged.get(str(model).lower(), {}), **{k: float(v) for k, v in rates.items()}}
    return merged


def total(found: Iterable[Usage]) -> Usage:
    out = Usage()
    for used in found:
        out = out + dataclasses.replace(used, model=None)
    return out


def tokens_text(used: Mapping[str, Any] | None) -> str:
    """A Usage.to_dict()'s tokens, short: 950, 12.3k, 1.2M; '-' for none."""
    total = int((used or {}).get("total") or 0)
    if not total:
        return "-"
    return f"{total / 1e6:.1f}M" if total >= 1e6 else f"{total / 1e3:.1f}k" if total >= 1e4 else str(total)


def cost_text(used: Mapping[str, Any] | None) -> str:
    """A Usage.to_dict()'s cost: $0.42, $0.42~ when estimated from the price table, ? when unknown."""
    value = (used or {}).get("cost_usd")
    if value is None:
        return "-" if not (used or {}).get("total") else "?"
    return f"${value:.2f}" + ("~" if (used or {}).get("estimated") else "")
