"""Text and JSON rendering for the CLI: no logic, only presentation."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # annotations only: rendering must not import the core on the CLI's fast paths
    from .. import mailbox
    from ..runtimes.base import OutputEvent


def emit_json(data: dict[str, Any]) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def agent_table(views: list[dict[str, Any]]) -> str:
    """`fracta list`: one row an agent; a queued one says its place in the queue and what it waits for."""
    rows = [
        [
            a["name"],
            a["status"] + (f" ({a['waiting']})" if a.get("waiting") else ""),
            a["runtime"],
            str(a["unread"]),
            str(a["tokens_used"] or "-"),
            a["branch"] or "-",
            a["intent"] or "-",
        ]
        for a in views
    ]
    text = table(rows, ["name", "status", "runtime", "unread", "tokens", "branch", "intent"])
    reasons = [f"  {a['name']} {a['status']}: {a['error']}" for a in views if a["error"]]
    return text + ("\nwhy:\n" + "\n".join(reasons) if reasons else "")


def message(msg: mailbox.Message) -> str:
    head = f"[{msg.sent_at}] {msg.sender} -> {msg.to}"
    if msg.subject:
        head += f"  ({msg.subject})"
    if msg.reply_to:
        head += f"  reply-to {msg.reply_to}"
    status = "" if not msg.read else "  (read)"
    return f"{head}{status}  id {msg.id}\n" + "\n".join(f"  {line}" for line in msg.body.splitlines())


def warn(text: str) -> None:
    click.echo(f"warning: {text}", err=True)


def output_event(event: OutputEvent) -> str:
    stamp = (event.ts or "")[11:19]
    prefix = {"line": "", "text": "", "tool_call": "→ ", "tool_result": "← ", "usage": "· ", "error": "! "}.get(
        event.kind, ""
    )
    stream = " (stderr)" if event.data.get("stream") == "stderr" else ""
    return f"{stamp} {prefix}{event.text}{stream}".strip()
