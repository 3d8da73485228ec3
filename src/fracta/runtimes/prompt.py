"""The prompt an AI agent gets: its task wrapped in who it is, where it works and how to keep in touch.

The text comes from a template: `templates/agent_prompt.md` (first launch) or
`templates/wake_prompt.md` (a resumed session) at the repository root when the user put one
there, else the defaults shipped in fracta/templates/. Placeholders are `{{name}}`, `{{task}}`,
`{{workspace}}` and `{{branch}}`; an unknown one is an error, so a typo never reaches an agent.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from ..errors import ConfigError
from .base import LaunchContext

TEMPLATE_DIR = "templates"  # at the repository root, tracked with the project if the user wants
AGENT_TEMPLATE = "agent_prompt.md"
WAKE_TEMPLATE = "wake_prompt.md"
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]+)\s*\}\}")


def template(root: Path | None, filename: str) -> tuple[str, str]:
    """(text, where it came from): the user's override if present, else fracta's default."""
    if root is not None:
        override = root / TEMPLATE_DIR / filename
        if override.is_file():
            return override.read_text(), str(override)
    default = resources.files("fracta").joinpath("templates", filename)
    return default.read_text(), f"fracta's default {filename}"


def render(text: str, values: dict[str, str], source: str) -> str:
    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise ConfigError(
                f"unknown placeholder {{{{{key}}}}} in {source}",
                f"use only {', '.join('{{' + k + '}}' for k in sorted(values))}",
            )
        return values[key]

    return _PLACEHOLDER.sub(fill, text).strip() + "\n"


def for_launch(ctx: LaunchContext) -> str:
    """The full prompt for this launch: the task in the agent template, or a wake-up for a resume."""
    values = {
        "name": ctx.name,
        "task": (ctx.prompt or "").strip(),
        "workspace": str(ctx.workspace),
        "branch": ctx.branch or "(none: a plain directory, not a git worktree)",
    }
    if ctx.session_id is not None:
        if ctx.prompt:
            return ctx.prompt
        text, source = template(ctx.root, WAKE_TEMPLATE)
    else:
        text, source = template(ctx.root, AGENT_TEMPLATE)
    return render(text, values, source)
