"""The project's own chaos test: a seeded random run of fracta operations through the real CLI.

Real processes in a real git repository: `command` agents that commit, leave uncommitted work,
sleep, fail, conflict with main and chat; merges; kills with and without --force; messages;
SIGKILLs of the control plane (also mid-spawn), of runners and of agents' programs; down/up;
bad inputs; damaged records. fracta's promises are checked as the run goes and at its end (see
tests/chaos/invariants.py). It runs on both state stores: on PostgreSQL (a fresh database of the
suite's own server), the damaged files give way to the database's faults (connections
terminated, the server crashed and restarted) and a second control plane started and SIGKILLed
(tests/chaos/pgfaults.py). CI runs one fixed seed per backend; to run long or with other seeds:

    FRACTA_CHAOS_SEED=7,8,9 FRACTA_CHAOS_OPS=300 .venv/bin/python -m pytest -n 0 -s tests/test_chaos.py
    FRACTA_CHAOS_BACKENDS=postgres FRACTA_CHAOS_SEED=1,2,3 ...   # one backend only

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
# On PostgreSQL, a seed whose operations reach the database's faults: connections terminated
# under running agents, the server crashed under a keyed send, control plane b up, SIGKILLed
# and started again while agents run, and a spawn whose control plane is SIGKILLed.
DEFAULT_PG_SEED = 357
DEFAULT_PG_OPS = 20
CHOSEN = os.environ.get("FRACTA_CHAOS_SEED", "")
SEEDS = [int(s) for s in CHOSEN.split(",") if s.strip()]
CHOSEN_OPS = os.environ.get("FRACTA_CHAOS_OPS", "")
BACKENDS = [b for b in os.environ.get("FRACTA_CHAOS_BACKENDS", "files,postgres").split(",") if b.strip()]
RUNS = [
    pytest.param(backend, seed, id=f"{backend}-{seed}")
    for backend in BACKENDS
    for seed in SEEDS or [DEFAULT_PG_SEED if backend == "postgres" else DEFAULT_SEED]
]
CHECK_EVERY = int(os.environ.get("FRACTA_CHAOS_CHECK_EVERY", "6"))
STEPS = os.environ.get("FRACTA_CHAOS_STEPS", "")
REPORT = os.environ.get("FRACTA_CHAOS_REPORT", "")  # read now: the suite's fixtures clear FRACTA_* variables
MAX_AGENTS = 3  # below plan.MAX_LIVE, so spawns queue and kills race starts


def _ops(backend: str) -> int:
    return int(CHOSEN_OPS or (DEFAULT_PG_OPS if backend == "postgres" else 30))


@pytest.fixture
def world(tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    backend, seed = request.node.callspec.params["backend"], request.node.callspec.params["seed"]
    run = f"chaos-{os.getpid()}-{backend}-{seed}-{time.time_ns()}"
    env = cli_env(dict(os.environ))
    server = dbname = None
    if backend == "postgres":
        server = request.getfixturevalue("pg_server")
        dbname = server.create_database()
        with server.admin() as conn:  # a crash (stop -m immediate) loses no commit it acknowledged
            conn.execute(f'ALTER DATABASE "{dbname}" SET synchronous_commit = on')
        env["FRACTA_DATABASE_URL"] = server.url(dbname)
        monkeypatch.setenv("FRACTA_DATABASE_URL", env["FRACTA_DATABASE_URL"])  # for the checks' own reads
    w = World(tmp_path, run, env, backend)
    w.server, w.dbname = server, dbname or ""
    try:
        yield w
    finally:
        w.gate.touch()
        procs.kill_everything(run, w.state)  # whatever a failed run left: only this run's processes
        w.close()
        if server is not None and dbname:
            server.drop_database(dbname)


def _steps(w: World, seed: int) -> Iterator[plan.Step]:
    if STEPS:
        yield from plan.parse_steps(STEPS)
        return
    for n, draw in enumerate(plan.draws(seed, _ops(w.backend), w.backend), start=1):
        yield plan.resolve(w, draw)
        if n % CHECK_EVERY == 0:
            yield plan.Step("check")


def _report(w: World, seed: int, kinds: Counter[str], seconds: float, spent: Counter[str]) -> str:
    replay = "; ".join(m.group(1) for line in w.log if (m := re.match(r"\s*\d+\. (.*)", line)))
    by_invariant = Counter(v.invariant for v in w.violations)
    return "\n".join(
        [
            f"chaos run ({w.backend}): seed {seed}, {sum(kinds.values())} steps in {seconds:.1f}s",
            f"operations: {dict(sorted(kinds.items()))}",
            f"seconds by operation: { {k: round(v, 1) for k, v in spent.most_common()} }",
            f"checks: {dict(sorted(w.checks.items()))}",
            f"violations by invariant: {dict(by_invariant)}",
            *(str(v) for v in w.violations),
            "steps:",
            *w.log,
            f'replay: FRACTA_CHAOS_BACKENDS={w.backend} FRACTA_CHAOS_STEPS="{replay}" '
            ".venv/bin/python -m pytest -n 0 tests/test_chaos.py",
            f"or: FRACTA_CHAOS_BACKENDS={w.backend} FRACTA_CHAOS_SEED={seed} FRACTA_CHAOS_OPS={_ops(w.backend)} "
            ".venv/bin/python -m pytest -n 0 tests/test_chaos.py",
        ]
    )


@pytest.mark.timeout(180 + 15 * max(_ops("files"), _ops("postgres")))
@pytest.mark.parametrize(("backend", "seed"), RUNS)
def test_a_seeded_run_of_spawns_merges_kills_messages_and_crashes_keeps_every_promise(
    world: World, backend: str, seed: int
) -> None:
    began = time.monotonic()
    world.create(max_agents=MAX_AGENTS)
    kinds: Counter[str] = Counter()
    spent: Counter[str] = Counter()  # seconds by kind of operation (and the end)
    for step in _steps(world, seed):
        world.step += 1
        kinds[step.kind] += 1
        world.note(f"{world.step:3d}. {step}")
        at = time.monotonic()
        ops.perform(world, step)
        spent[step.kind] += time.monotonic() - at
    at = time.monotonic()
    invariants.check_as_it_goes(world)
    ops.finish(world)
    spent["end"] += time.monotonic() - at
    seconds = time.monotonic() - began
    report = _report(world, seed, kinds, seconds, spent)
    if not world.violations:
        print(report)  # the figures (with -s); a failure shows them in its message
    if REPORT:
        figures = {
            "backend": backend,
            "seed": seed,
            "seconds": round(seconds, 1),
            "operations": dict(kinds),
            "seconds_by_operation": {k: round(v, 1) for k, v in spent.items()},
            "checks": dict(world.checks),
            "violations": [{"invariant": v.invariant, "step": v.step, "detail": v.detail} for v in world.violations],
            "steps": world.log,
        }
        with open(REPORT, "a") as fh:
            fh.write(json.dumps(figures) + "\n")
    assert not world.violations, report
