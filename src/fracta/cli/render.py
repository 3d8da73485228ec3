"""Text and JSON rendering for the CLI: no logic, only presentation."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # annotations only: rendering must not import the core on the CLI's fast paths
    from .. import mailbox
    from ..project import InitResult
    from ..runtimes.base import OutputEvent
    from ..scaffold import ScaffoldResult

ELLIPSIS = "…"


def emit_json(data: dict[str, Any]) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def table(
    rows: list[list[str]],
    headers: list[str],
    width: int | None = None,
    shrink: Sequence[tuple[int, int]] = (),
    drop: Sequence[int] = (),
) -> str:
    """Rows in aligned columns. Given a `width`, the `shrink` columns (index, narrowest) are cut, in
    that order, until a row fits; a cut cell ends in an ellipsis. If rows are still too wide, the
    `drop` columns are left out, in that order, until they fit."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    over = sum(widths) + 2 * (len(widths) - 1) - width if width else 0
    for column, narrowest in shrink:
        cut = min(max(over, 0), max(widths[column] - narrowest, 0))
        widths[column] -= cut
        over -= cut
    shown = list(range(len(headers)))
    for column in drop:
        if over <= 0:
            break
        shown.remove(column)
        over -= widths[column] + 2

    def line(cells: list[str]) -> str:
        return "  ".join(_fit(str(cells[i]), widths[i]) for i in shown).rstrip()

    return "\n".join([line([h.upper() for h in headers]), *(line(row) for row in rows)])


def _fit(text: str, width: int) -> str:
    return text.ljust(width) if len(text) <= width else text[: width - 1] + ELLIPSIS


def terminal_width() -> int | None:
    """The width to fit tables to on a terminal: $COLUMNS, else the terminal's. None in a pipe: a
    script or grep gets whole rows (and --json is there for programs)."""
    try:
        if not sys.stdout.isatty():
            return None
        columns = os.environ.get("COLUMNS", "")
        return (
            int(columns)
            if columns.isdigit() and int(columns) > 0
            else os.get_terminal_size(sys.stdout.fileno()).columns
        )
    except (OSError, ValueError):  # no terminal after all, or stdout replaced by something without a descriptor
        return None


def agent_table(views: list[dict[str, Any]], width: int | None = None, totals: dict[str, Any] | None = None) -> str:
    """`fracta list`: one row an agent, its state first; a queued one says its place in the queue.

    Fitted to `width`: the intent is cut first, then the branch, then the status; never the name.
    Still too wide, the runtime, cost and unread columns are left out, in that order.
    Below: why each agent that needs you (or stalled, or failed) is so, and the fleet's totals.
    """
    rows = [
        [
            a["name"],
            a["state"],
            a["status"] + (f" ({a['waiting']})" if a.get("waiting") else ""),
            a["runtime"],
            str(a["unread"]),
            tokens(a["usage"]),
            cost(a["usage"]),
            a["branch"] or "-",
            a["intent"] or "-",
        ]
        for a in views
    ]
    headers = ["name", "state", "status", "runtime", "unread", "tokens", "cost", "branch", "intent"]
    text = table(rows, headers, width, shrink=[(8, 8), (7, 10), (2, 10)], drop=[3, 6, 4])
    loud = ("needs-you", "stalled", "failed")
    reasons = [f"  {a['name']} {a['state']}: {a['state_reason']}" for a in views if a["state"] in loud]
    text += "\nwhy:\n" + "\n".join(reasons) if reasons else ""
    return text + (f"\n{fleet_line(totals)}" if totals else "")


def tokens(used: dict[str, Any] | None) -> str:
    from ..usage import tokens_text  # light: dataclasses only

    return tokens_text(used)


def cost(used: dict[str, Any] | None) -> str:
    from ..usage import cost_text

    return cost_text(used)


def fleet_line(totals: dict[str, Any]) -> str:
    """agents 5: 1 needs-you, 2 working · 1.2M tokens · $3.40 · 1 queued"""
    from ..results import fleet_line as line  # the caller built `totals` with results: already imported

    return line(totals)


def message_state(m: Any) -> str:
    """One sent message and what became of it (delivery.MessageState)."""
    about = f" [{m.subject}]" if m.subject else ""
    flag = "!" if m.state == "undeliverable" or m.alert else " "
    return f"{flag} {m.sent_at}  to {m.to}{about}  {m.state}: {m.reason}"


def scaffold_lines(result: ScaffoldResult) -> list[str]:
    """What `fracta init --scaffold` did to each file."""
    lines = [f"scaffold {result.mode}:"]
    for written in result.files:
        note = ""
        if written.outcome.value == "kept":
            note = "  (you edited it: kept; --force overwrites it)"
        elif written.backup is not None:
            note = f"  (your version: {written.backup})"
        lines.append(f"  {written.outcome.value:<11} {written.path}{note}")
    return lines


NEXT_STEPS = {
    "compose": [
        "  export FRACTA_DB_PASSWORD=... ANTHROPIC_API_KEY=...   # see docs/quickstart-compose.md",
        "  docker compose -f deployment/compose/docker-compose.yml up -d --build",
        '  docker compose -f deployment/compose/docker-compose.yml exec control fracta spawn NAME --prompt "..."',
    ],
    "k8s": [
        "  docker build -t fracta:local deployment   # push it where your cluster pulls from: docs/quickstart-k8s.md",
        "  make -C deployment/k8s k8s-secrets        # Secrets from your environment",
        "  make -C deployment/k8s k8s-apply          # the ConfigMap from fracta.yaml, then kubectl apply -k",
    ],
}


def init_next_steps(result: InitResult) -> list[str]:
    """After `fracta init`: which files to commit (and which not), and what to run next."""
    shared = ["fracta.yaml", *(str(w.path.relative_to(result.root)) for w in result.wiring if w.error is None)]
    if result.scaffold is not None and result.scaffold.mode in NEXT_STEPS:
        shared.append("deployment/")
    lines = [
        f"commit {', '.join(shared)}: they let everyone who clones this repository use fracta",
        "  (not .fracta/: it holds tokens and this machine's agents; .git/info/exclude keeps it out of git)",
        "next:",
    ]
    if result.scaffold is not None and result.scaffold.mode in NEXT_STEPS:
        return lines + NEXT_STEPS[result.scaffold.mode]
    return [
        *lines,
        "  fracta doctor                                        # check git, the AI CLIs and credentials",
        '  fracta spawn NAME --runtime claude --prompt "..."    # an agent on a task, in its own worktree',
        "  or start claude, codex or opencode here: they spawn and talk to agents through fracta's tools",
    ]


def message(msg: mailbox.Message) -> str:
    head = f"[{msg.sent_at}] {msg.sender} -> {msg.to}"
    if msg.subject:
        head += f"  ({msg.subject})"
    if msg.reply_to:
        head += f"  reply-to {msg.reply_to}"
    status = "" if not msg.read else "  (read)"
    return f"{head}{status}  id {msg.id}\n" + "\n".join(f"  {line}" for line in msg.body.splitlines())


def warn(text: str) -> None:
    click.echo(f"{style('warning:', fg='yellow', bold=True)} {text}", err=True)


def style(text: str, **how: Any) -> str:
    """`text` styled for a terminal, or plain when NO_COLOR is set (https://no-color.org).

    click.echo strips the styles itself when the output is not a terminal.
    """
    return text if os.environ.get("NO_COLOR") else click.style(text, **how)


def examples(*lines: str) -> str:
    """A help page's epilog: the example lines as written (the \\b keeps click from rewrapping them)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


def output_event(event: OutputEvent) -> str:
    stamp = (event.ts or "")[11:19]
    prefix = {"line": "", "text": "", "tool_call": "→ ", "tool_result": "← ", "usage": "· ", "error": "! "}.get(
        event.kind, ""
    )
    stream = " (stderr)" if event.data.get("stream") == "stderr" else ""
    return f"{stamp} {prefix}{event.text}{stream}".strip()
