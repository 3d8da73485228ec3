"""The project's own chaos test: a seeded random run of fracta operations through the real CLI.

Real processes in a real git repository: `command` agents that commit, leave uncommitted work,
sleep, fail, conflict with main and chat; merges; kills with and without --force; messages;
SIGKILLs of the control plane (also mid-spawn), of runners and of agents' programs; down/up;
bad inputs; damaged records. fracta's promises are checked as the run goes and at its end (see
tests/chaos/invariants.py). CI runs one fixed seed; to run long or with other seeds:

    FRACTA_CHAOS_SEED=7,8,9 FRACTA_CHAOS_OPS=300 .venv/bin/python -m pytest -n 0 -s tests/test_chaos.py

A failure prints the seed, every violation and the concrete steps taken; replay those steps with
FRACTA_CHAOS_STEPS="spawn a1 sleep; sigkill-runner a1; check" (';' or new lines between steps).
FRACTA_CHAOS_REPORT=FILE appends each run's figures (operations by kind, checks, wall time) as JSON.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from chaos import invariants, ops, plan, procs
from chaos.world import World, cli_env

# A seed whose 30 operations reach the hard cases: runners SIGKILLed and their agents then
# killed, spawns interrupted by a control plane's SIGKILL, concurrent kills while others queue.
DEFAULT_SEED = 158
SEEDS = [int(s) for s in os.environ.get("FRACTA_CHAOS_SEED", str(DEFAULT_SEED)).split(",") if s.strip()]
OPS = int(os.environ.get("FRACTA_CHAOS_OPS", "30"))
CHECK_EVERY = int(os.environ.get("FRACTA_CHAOS_CHECK_EVERY", "6"))
STEPS = os.environ.get("FRACTA_CHAOS_STEPS", "")
REPORT = os.environ.get("FRACTA_CHAOS_REPORT", "")  # read now: the suite's fixtures clear FRACTA_* variables
MAX_AGENTS = 3  # below plan.MAX_LIVE, so spawns queue and kills race starts


@pytest.fixture
def world(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[World]:
    run = f"chaos-{os.getpid()}-{request.node.callspec.params['seed']}-{time.time_ns()}"
    w = World(tmp_path, run, cli_env(dict(os.environ)))
    try:
        yield w
    finally:
        w.gate.touch()
        procs.kill_everything(run, w.state)  # whatever a failed run left: only this run's processes


def _steps(w: World, seed: int) -> Iterator[plan.Step]:
    if STEPS:
        yield from plan.parse_steps(STEPS)
        return
    for n, draw in enumerate(plan.draws(seed, OPS), start=1):
        yield plan.resolve(w, draw)
        if n % CHECK_EVERY == 0:
            yield plan.Step("check")


def _report(w: World, seed: int, kinds: Counter[str], seconds: float) -> str:
    replay = "; ".join(m.group(1) for line in w.log if (m := re.match(r"\s*\d+\. (.*)", line)))
    by_invariant = Counter(v.invariant for v in w.violations)
    return "\n".join(
        [
            f"chaos run: seed {seed}, {sum(kinds.values())} steps in {seconds:.1f}s",
            f"operations: {dict(sorted(kinds.items()))}",
            f"checks: {dict(sorted(w.checks.items()))}",
            f"violations by invariant: {dict(by_invariant)}",
            *(str(v) for v in w.violations),
            "steps:",
            *w.log,
            f'replay: FRACTA_CHAOS_STEPS="{replay}" .venv/bin/python -m pytest -n 0 tests/test_chaos.py',
            f"or: FRACTA_CHAOS_SEED={seed} FRACTA_CHAOS_OPS={OPS} .venv/bin/python -m pytest -n 0 tests/test_chaos.py",
        ]
    )


@pytest.mark.timeout(180 + 15 * OPS)
@pytest.mark.parametrize("seed", SEEDS)
def test_a_seeded_run_of_spawns_merges_kills_messages_and_crashes_keeps_every_promise(world: World, seed: int) -> None:
    began = time.monotonic()
    world.create(max_agents=MAX_AGENTS)
    kinds: Counter[str] = Counter()
    for step in _steps(world, seed):
        world.step += 1
        kinds[step.kind] += 1
        world.note(f"{world.step:3d}. {step}")
        ops.perform(world, step)
    invariants.check_as_it_goes(world)
    ops.finish(world)
    seconds = time.monotonic() - began
    report = _report(world, seed, kinds, seconds)
    if not world.violations:
        print(report)  # the figures (with -s); a failure shows them in its message
    if REPORT:
        figures = {
            "seed": seed,
            "seconds": round(seconds, 1),
            "operations": dict(kinds),
            "checks": dict(world.checks),
            "violations": [{"invariant": v.invariant, "step": v.step, "detail": v.detail} for v in world.violations],
            "steps": world.log,
        }
        with open(REPORT, "a") as fh:
            fh.write(json.dumps(figures) + "\n")
    assert not world.violations, report
