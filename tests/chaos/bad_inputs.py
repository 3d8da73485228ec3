"""Bad inputs: each must be refused with the README's exit code, a clean error, and no change.

"No change" is judged on what a refused call could have touched, and that nothing else changes
meanwhile (agents keep running and committing): the agents fracta knows (name, creation time,
intent), the worktrees, the feature/* and archive refs, main's HEAD and the main worktree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fracta import agents

from .invariants import leftovers
from .world import World

USAGE, NOT_FOUND, CONFLICT, CORRUPT = 2, 3, 4, 6  # README's exit codes
REFUSED = "every bad input refused with the README's exit code and nothing changed"


@dataclass(frozen=True)
class BadInput:
    args: tuple[str, ...]  # {agent}: an existing agent; {ghost}: a name no agent has
    code: int
    what: str


BAD_INPUTS = [
    BadInput(("spawn", "Bad_Name", "--", "true"), USAGE, "an invalid task name"),
    BadInput(("spawn", "main", "--", "true"), USAGE, "a reserved task name"),
    BadInput(("spawn", "{agent}", "--", "true"), CONFLICT, "the name of an existing agent"),
    BadInput(("kill", "{ghost}"), NOT_FOUND, "kill of an unknown agent"),
    BadInput(("say", "{ghost}", "hello"), NOT_FOUND, "a message to an unknown agent"),
    BadInput(("inbox", "{ghost}"), NOT_FOUND, "the inbox of an unknown agent"),
    BadInput(("merge", "{ghost}"), NOT_FOUND, "merge of an unknown agent"),
    BadInput(("peek", "{ghost}"), NOT_FOUND, "peek at an unknown agent"),
    BadInput(("kill", "../etc"), USAGE, "a path as an agent name"),
    BadInput(("spawn", "{ghost}", "--no-such-flag", "--", "true"), USAGE, "an unknown spawn flag"),
    BadInput(("list", "--no-such-flag"), USAGE, "an unknown list flag"),
    BadInput(("say", "{agent}", "   "), USAGE, "an empty message"),
    BadInput(("spawn", "{ghost}", "--base", "no-such-ref", "--", "true"), USAGE, "an unknown base ref"),
    BadInput(("intent", "{agent}", "x" * 300), USAGE, "an intent of 300 characters"),
    BadInput(("spawn", "{ghost}", "--runtime", "no-such-runtime", "--", "true"), USAGE, "an unknown runtime"),
    BadInput(("say", "chessmaster", "hello", "--from", "{ghost}"), NOT_FOUND, "a message from an unknown sender"),
    BadInput(("spawn", "{ghost}"), USAGE, "a command agent without a command"),
    BadInput(("kill", "{agent}", "--no-such-flag"), USAGE, "an unknown kill flag"),
]


def snapshot(world: World) -> dict[str, Any]:
    """What a refused call must leave as it was."""
    # Only the fields no running agent changes by itself, read through fracta (either store).
    listed, _ = agents.list_all(world.fracta)
    records = {a.name: [a.created_at, a.intent] for a in listed}
    trees, branches = leftovers(world)
    return {
        "agents": records,
        "worktrees": sorted(trees),
        "branches": sorted(branches),
        "archive": world.git("for-each-ref", "--format=%(refname) %(objectname)", "refs/fracta/"),
        "head": world.git("rev-parse", "HEAD"),
        "status": world.git("status", "--porcelain"),
    }


def run(world: World, index: int) -> None:
    """Make bad input number `index` and check it was refused cleanly, changing nothing."""
    bad = BAD_INPUTS[index]
    names = world.names()
    ghost = f"ghost{world.step}"
    args = [
        a.replace("{agent}", names[world.step % len(names)] if names else "a0").replace("{ghost}", ghost)
        for a in bad.args
    ]
    before = snapshot(world)
    call = world.cli(*args)
    after = snapshot(world)
    world.checks[REFUSED] += 1
    # An error line (fracta's "error: ..." or click's "Error: ..." under its usage line); a line
    # before it, such as "started the control plane", is fine.
    clean = any(line.startswith(("error: ", "Error: ")) for line in call.stderr.splitlines())
    if call.returncode != bad.code or not clean:
        world.violate(
            REFUSED,
            f"{bad.what}: {call.short()}, expected {bad.code} and an error; stderr: {call.stderr.strip()[:300]}",
        )
    changed = [key for key in before if before[key] != after[key]]
    if changed:
        detail = "; ".join(f"{k}: {before[k]!r} -> {after[k]!r}" for k in changed)
        world.violate(REFUSED, f"{bad.what}: {call.short()} changed {detail[:600]}")
