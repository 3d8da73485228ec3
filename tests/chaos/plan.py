"""What the run does: draws from the seed, resolved one at a time into concrete, replayable steps.

The seed fixes the sequence of draws (an operation kind and two numbers). Each draw becomes a
concrete `Step` ("kill-force a3") only when it is its turn, from the world as it then is: the
kinds and the choices are deterministic given the seed; which agents exist may vary with
process timing. The printed steps replay exactly with FRACTA_CHAOS_STEPS.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from . import agent
from .bad_inputs import BAD_INPUTS
from .world import CHESSMASTER, World

MAX_LIVE = 7  # agents at once: more would only queue and slow the run down

# kind -> weight. Targeted kinds fall back to a spawn when there is no agent to act on.
WEIGHTS = {
    "spawn": 6,
    "spawn-sigkill-cp": 1,
    "spawn-kill": 1,
    "merge": 3,
    "kill": 2,
    "kill-force": 2,
    "kill-pair": 1,
    "say": 3,
    "say-from": 1,
    "inbox": 3,
    "sigkill-cp": 1,
    "sigkill-runner": 2,
    "sigkill-agent": 1,
    "sigkill-all": 1,
    "down-up": 1,
    "main-commit": 1,
    "bad": 3,
    "damage-record": 1,
    "garbage-message": 1,
}
# The postgres backend's run: the operations that damage .fracta/'s files give way to the
# database's own faults and to a second control plane on the same store.
FILES_ONLY = {"damage-record", "garbage-message"}
POSTGRES_ONLY = {
    "pg-kill-conns": 2,  # terminate every fracta connection (pg_terminate_backend)
    "pg-restart": 1,  # crash and restart the server, a keyed send racing the outage
    "up-b": 2,  # start a second control plane, `fracta up --instance b`
    "sigkill-cp-b": 1,
}
WEIGHTS_BY_BACKEND = {
    "files": WEIGHTS,
    "postgres": {**{k: w for k, w in WEIGHTS.items() if k not in FILES_ONLY}, **POSTGRES_ONLY},
}
KINDS = {*WEIGHTS, *POSTGRES_ONLY, "check"}

TARGETED = {
    "merge",
    "kill",
    "kill-force",
    "say-from",
    "sigkill-runner",
    "sigkill-agent",
    "sigkill-all",
    "damage-record",
}

SIGNALS = {"sigkill-runner", "sigkill-agent", "sigkill-all"}


@dataclass(frozen=True)
class Draw:
    kind: str
    pick: int
    extra: int


@dataclass(frozen=True)
class Step:
    """One concrete operation: its kind, its target (an agent, chessmaster, *, a number), a detail."""

    kind: str
    target: str = ""
    detail: str = ""

    def __str__(self) -> str:
        return " ".join(p for p in (self.kind, self.target, self.detail) if p)

    @classmethod
    def parse(cls, text: str) -> Step:
        parts = text.split()
        if not parts or parts[0] not in KINDS:
            raise ValueError(f"not a chaos step: {text!r} (kinds: {', '.join(sorted(KINDS))})")
        return cls(*parts[:3])


def draws(seed: int, count: int, backend: str = "files") -> list[Draw]:
    rng = random.Random(seed)
    table = WEIGHTS_BY_BACKEND[backend]
    kinds, weights = list(table), list(table.values())
    return [Draw(rng.choices(kinds, weights)[0], rng.randrange(1 << 30), rng.randrange(1 << 30)) for _ in range(count)]


def parse_steps(text: str) -> list[Step]:
    """Steps as the failure report prints them, separated by ';' or new lines."""
    return [Step.parse(part) for part in text.replace("\n", ";").split(";") if part.strip()]


def resolve(world: World, draw: Draw) -> Step:
    """The concrete step `draw` means in the world as it is now."""
    names = world.names()
    if draw.kind in TARGETED and not names:
        return _spawn(world, draw)
    if draw.kind == "spawn" and len(names) >= MAX_LIVE:
        return Step("kill-force", names[draw.pick % len(names)])
    pick = draw.pick
    if draw.kind in ("spawn", "spawn-sigkill-cp", "spawn-kill"):
        return _spawn(world, draw)
    if draw.kind == "kill-pair":
        if len(names) < 2:
            return _spawn(world, draw)
        first = names[pick % len(names)]
        others = [n for n in names if n != first]
        return Step("kill-pair", first, others[draw.extra % len(others)])
    if draw.kind in SIGNALS:  # aim at agents still running, when there are any
        waiting = [n for n in names if world.live[n].behaviour in agent.WAITING] or names
        return Step(draw.kind, waiting[pick % len(waiting)])
    if draw.kind in TARGETED:
        return Step(draw.kind, names[pick % len(names)])
    if draw.kind == "say":
        options = [*names, CHESSMASTER, "*"]
        return Step("say", options[pick % len(options)])
    if draw.kind == "pg-restart":  # a keyed send to someone races the outage (down 0.5 to 6 s)
        options = [*names, CHESSMASTER]
        return Step("pg-restart", options[pick % len(options)], f"{5 + draw.extra % 56}")
    if draw.kind in ("inbox", "garbage-message"):
        options = [*names, CHESSMASTER]
        return Step(draw.kind, options[pick % len(options)])
    if draw.kind == "bad":
        usable = [i for i, bad in enumerate(BAD_INPUTS) if names or "{agent}" not in " ".join(bad.args)]
        return Step("bad", str(usable[pick % len(usable)]))
    return Step(draw.kind)


def _spawn(world: World, draw: Draw) -> Step:
    behaviour = agent.BEHAVIOURS[draw.extra % len(agent.BEHAVIOURS)]
    reusable = sorted({inc.name for inc in world.gone} - set(world.live))
    kind = draw.kind if draw.kind in ("spawn-sigkill-cp", "spawn-kill") else "spawn"
    if reusable and draw.pick % 4 == 0:  # a name used before: its old agent must be all gone
        return Step(kind, reusable[draw.pick % len(reusable)], behaviour)
    world.names_made += 1
    return Step(kind, f"a{world.names_made}", behaviour)
