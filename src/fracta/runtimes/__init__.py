"""The runtime registry: names to small adapter modules, imported only when used."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..errors import InvalidInput

if TYPE_CHECKING:  # the CLI reads REGISTRY's names for --runtime; the protocol's imports can wait
    from .base import Runtime

# name -> "module:Class"; adapters are imported lazily so the CLI's fast paths stay light.
REGISTRY = {
    "claude": "fracta.runtimes.claude:ClaudeRuntime",
    "codex": "fracta.runtimes.codex:CodexRuntime",
    "command": "fracta.runtimes.command:CommandRuntime",
    "opencode": "fracta.runtimes.opencode:OpenCodeRuntime",
}


def get(name: str) -> Runtime:
    try:
        target = REGISTRY[name]
    except KeyError:
        raise InvalidInput(f"unknown runtime {name!r}", f"use one of: {', '.join(sorted(REGISTRY))}") from None
    module, cls = target.split(":")
    runtime: Runtime = getattr(importlib.import_module(module), cls)()
    return runtime


def names() -> list[str]:
    return sorted(REGISTRY)
