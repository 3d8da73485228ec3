"""The web view's HTML, rendered on the server from the same result shapes as `fracta list --json`
and the REST API: the page, the fleet (totals and a row per agent) and one agent's details.

Every value goes through `esc`; the page's script only swaps these fragments in and appends peek
lines as text, so nothing an agent writes is ever run as markup.
"""

from __future__ import annotations

from html import escape
from typing import Any

from .. import __version__, usage
from ..branches import BranchStatus
from ..correspondence import Correspondence
from ..delivery import MessageState

STATE_WORDS = {"needs-you": "needs you"}


def esc(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def page(root: str, fleet_html: str, csrf: str, cursor: int) -> str:
    """The whole page: the fleet, the message form, the (hidden) agent panel, the script."""
    v = esc(__version__)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="fracta-csrf" content="{esc(csrf)}">
<title>fracta · {esc(root)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/ui/static/app.css?v={v}">
<script src="/ui/static/app.js?v={v}" defer></script>
</head>
<body data-cursor="{cursor}">
<header>
<h1>fracta</h1><span class="root">{esc(root)}</span>
<span id="live" class="live" data-live="connecting">connecting…</span>
</header>
<main>
<section id="fleet">{fleet_html}</section>
<section id="compose" aria-label="send a message">
<form id="send">
<label>To <input name="to" id="send-to" list="agent-names" required autocomplete="off"
placeholder="agent, or * for all"></label>
<label class="grow">Message <input name="message" id="send-message" required autocomplete="off"></label>
<button type="submit">Send</button>
</form>
<div id="send-result" class="result" role="status"></div>
</section>
<section id="detail" hidden>
<div class="actions">
<button type="button" id="merge-preview">Merge…</button>
<button type="button" id="kill" class="danger">Kill</button>
</div>
<div id="action-result" class="result" role="status"></div>
<div id="detail-body"></div>
<h3>Output <small>(live)</small></h3>
<pre id="peek" class="peek"></pre>
</section>
</main>
</body>
</html>
"""


def fleet(data: dict[str, Any]) -> str:
    """The fleet's totals and one row per agent, from results.agent_list()."""
    totals = data["totals"]
    counts = "".join(
        f'<span class="count state-{esc(s)}{" zero" if not n else ""}" data-state="{esc(s)}">'
        f"{n} {esc(STATE_WORDS.get(s, s))}</span>"
        for s, n in totals["states"].items()
    )
    head = (
        f'<div id="totals"><span class="count">{totals["agents"]} agents</span>{counts}'
        f'<span class="figure" id="tokens">{esc(usage.tokens_text(totals["usage"]))} tokens</span>'
        f'<span class="figure" id="cost">{esc(usage.cost_text(totals["usage"]))} cost</span>'
        f'<span class="figure" id="queued">{totals["queued"]} queued</span></div>'
    )
    rows = "".join(_row(a) for a in data["agents"])
    problems = "".join(f'<li class="problem">{esc(p["path"])}: {esc(p["error"])}</li>' for p in data["problems"])
    names = "".join(f'<option value="{esc(a["name"])}">' for a in data["agents"])
    empty = "" if rows else '<tr class="empty"><td colspan="7">no agents yet: fracta spawn TASK</td></tr>'
    return (
        f'{head}<table id="agents"><thead><tr><th>agent</th><th>state</th><th>intent</th><th>branch</th>'
        f"<th>unread</th><th>tokens</th><th>cost</th></tr></thead><tbody>{rows}{empty}</tbody></table>"
        f'<ul class="problems">{problems}</ul><datalist id="agent-names">{names}</datalist>'
    )


def _row(a: dict[str, Any]) -> str:
    state = str(a["state"])
    return (
        f'<tr class="agent" id="agent-{esc(a["name"])}" data-agent="{esc(a["name"])}" data-state="{esc(state)}">'
        f'<td class="name"><a href="#{esc(a["name"])}">{esc(a["name"])}</a>'
        f'<div class="sub">{esc(a["runtime"])} · {esc(a["status"])}</div></td>'
        f'<td class="state">{_badge(state)}<div class="reason">{esc(a["state_reason"])}</div></td>'
        f'<td class="intent">{esc(a["intent"])}</td>'
        f'<td class="branch">{esc(a["branch"] or "")}</td>'
        f'<td class="unread">{a["unread"] or ""}</td>'
        f'<td class="tokens">{esc(usage.tokens_text(a["usage"]))}</td>'
        f'<td class="cost">{esc(usage.cost_text(a["usage"]))}</td></tr>'
    )


def _badge(state: str) -> str:
    return f'<span class="badge state-{esc(state)}">{esc(STATE_WORDS.get(state, state))}</span>'


def detail(agent: dict[str, Any], branch: BranchStatus, mail: Correspondence) -> str:
    """One agent: state and reason, intent, branch against the integration branch, tokens and cost,
    messages both ways with their delivery states, the diff."""
    used = agent["usage"] or {}
    rows = [
        ("state", f'{_badge(agent["state"])} <span class="reason">{esc(agent["state_reason"])}</span>'),
        ("status", esc(agent["status"]) + (f" · {esc(agent['error'])}" if agent.get("error") else "")),
        ("intent", esc(agent["intent"]) or "<em>none</em>"),
        ("branch", _branch_line(branch)),
        ("last commit", _commit_line(branch)),
        (
            "tokens",
            f"{esc(usage.tokens_text(used))} (input {used.get('input', 0)}, output {used.get('output', 0)}, "
            f"cache read {used.get('cache_read', 0)}, cache write {used.get('cache_write', 0)})"
            + (f" · {esc(used['model'])}" if used.get("model") else ""),
        ),
        ("cost", esc(usage.cost_text(used)) + (" (estimated)" if used.get("estimated") else "")),
    ]
    if branch.uncommitted:
        files = ", ".join(esc(f) for f in branch.uncommitted[:20])
        more = f" and {len(branch.uncommitted) - 20} more" if len(branch.uncommitted) > 20 else ""
        rows.append(("uncommitted", f'<span class="warn">{len(branch.uncommitted)} file(s): {files}{more}</span>'))
    listing = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    return (
        f'<article class="agent-detail" data-agent="{esc(agent["name"])}" data-state="{esc(agent["state"])}">'
        f"<h2>{esc(agent['name'])}</h2><dl>{listing}</dl>"
        f"<h3>Messages in</h3>{_messages(mail.received, 'from')}"
        f"<h3>Messages out</h3>{_messages(mail.sent, 'to')}"
        f"<h3>Diff against {esc(branch.into or 'HEAD')}</h3>{_diff(branch)}</article>"
    )


def _branch_line(b: BranchStatus) -> str:
    if b.branch is None:
        return "<em>no git branch (not mergeable)</em>"
    into = esc(b.into or "HEAD")
    merged = '<span class="ok">merged</span>' if b.merged else '<span class="warn">not merged</span>'
    if b.merged and not b.ahead:
        merged = '<span class="ok">merged (nothing to merge)</span>'
    return f'<code>{esc(b.branch)}</code>: <span class="ahead">{b.ahead} ahead</span>, ' + (
        f'<span class="behind">{b.behind} behind</span> {into} · {merged}'
    )


def _commit_line(b: BranchStatus) -> str:
    c = b.last_commit
    if c is None:
        return "<em>none</em>"
    return f"<code>{esc(c.sha[:10])}</code> {esc(c.subject)} <small>({esc(c.author)}, {esc(c.at)})</small>"


# Beside a message its running recipient has left unread past mailbox.unread_alert.
LATE = ' <span class="delivery delivery-late" title="unread past mailbox.unread_alert">late</span>'


def _messages(found: list[MessageState], who: str) -> str:
    if not found:
        return '<p class="none">none</p>'
    rows = "".join(
        f'<tr class="message" data-id="{esc(m.id)}" data-delivery="{esc(m.state)}">'
        f"<td>{esc(m.sender if who == 'from' else m.to)}</td><td>{esc(m.subject or '')}</td>"
        f"<td>{esc(m.sent_at)}</td>"
        f'<td><span class="delivery delivery-{esc(m.state)}">{esc(m.state)}</span>{LATE if m.alert else ""}</td>'
        f'<td class="reason">{esc(m.reason)}</td></tr>'
        for m in reversed(found)
    )
    return (
        f'<table class="messages {who}"><thead><tr><th>{who}</th><th>subject</th><th>sent</th><th>delivery</th>'
        f"<th>story</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _diff(b: BranchStatus) -> str:
    if b.branch is None:
        return '<p class="none">no branch</p>'
    if not b.files:
        return '<p class="none">no changes</p>'
    files = "".join(
        f'<li><code>{esc(f.path)}</code> <span class="ok">+{f.added if f.added is not None else "bin"}</span>'
        f' <span class="warn">-{f.removed if f.removed is not None else "bin"}</span></li>'
        for f in b.files
    )
    lines = "".join(_diff_line(line) for line in b.diff.splitlines())
    cut = '<p class="warn">the diff is cut here (too long); see git diff</p>' if b.truncated else ""
    return f'<ul class="files">{files}</ul><pre class="diff">{lines}</pre>{cut}'


def _diff_line(line: str) -> str:
    kind = "add" if line.startswith("+") else "del" if line.startswith("-") else "hunk" if line.startswith("@@") else ""
    if line.startswith(("+++", "---", "diff ", "index ")):
        kind = "meta"
    return f'<span class="{kind}">{esc(line)}</span>\n' if kind else f"{esc(line)}\n"


def notice(title: str, body: str) -> str:
    """A plain page for a refused or missing login."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fracta · {esc(title)}</title>
<link rel="stylesheet" href="/ui/static/app.css?v={esc(__version__)}"></head>
<body class="notice"><main><h1>{esc(title)}</h1><p>{esc(body)}</p>
<p>Run <code>fracta ui</code> in the repository for a new link.</p></main></body></html>
"""
