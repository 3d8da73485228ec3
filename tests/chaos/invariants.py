"""fracta's promises, checked against the world model; each failure becomes a Violation.

`check_as_it_goes` runs between operations; `check_messages` and `check_saved_work` need the
run's end (or a forced kill) to be meaningful. Every wait here is bounded: GRACE is how long a
status may lag behind reality (a runner recording an exit), never a claim about speed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import pgfaults, procs
from .world import CHESSMASTER, Incarnation, World, wait_until

FINISHED = frozenset({"idle", "done", "failed", "killed", "lost"})
GRACE = 10.0  # seconds a just-changed process may take to show in fracta's records
REACHABLE = "every commit an agent made stays reachable"
ORPHANS = "no worktree or feature/* branch without an agent"
REMOVED = "no process of a removed agent alive"
RUNNING = "no agent `running` without a process"
UNSUPERVISED = "no agent shown finished (`lost`, done, failed) while a process of it runs"
EXACTLY_ONCE = "every message read exactly once"
SAVED = "every uncommitted change of a force-killed agent is recoverable with its content"
TRACEBACK = "no traceback in fracta's logs"
MODEL = "fracta shows the agents the run made, and only those"
LOST = "an agent is `lost` only if its runner died (SIGKILLed, or its control plane while it started)"


def check_as_it_goes(world: World) -> None:
    """The invariants that hold at any quiet moment between operations."""
    _, shown = world.agents()
    reconcile_model(world, shown)
    remember_runners(world, shown)
    check_orphans(world, shown)
    check_removed_processes(world)
    check_running_has_process(world, shown)
    check_finished_has_no_process(world, shown)
    check_lost(world, shown)
    check_commits_reachable(world)
    scan_logs(world)
    pgfaults.check(world)


def reconcile_model(world: World, shown: dict[str, dict[str, Any]]) -> None:
    """Settle uncertain spawns from what fracta shows; anything else unexpected is a violation."""
    world.checks[MODEL] += 1
    for name, inc in list(world.live.items()):
        if name in shown:
            inc.uncertain = False
        elif inc.uncertain:
            world.note(f"   (spawn of {name} did not happen: it is not an agent)")
            world.forget(name)
            world.unsettled[name] = inc  # a control plane may still adopt what it left
        else:
            world.violate(MODEL, f"agent {name} ({inc.ident}) was never removed but fracta lists no such agent")
            world.forget(name)
    for name in shown:
        late = world.unsettled.pop(name, None)
        if name not in world.live and late is not None:
            world.note(f"   ({name}, spawned as the control plane died, was adopted later)")
            world.gone.remove(late)
            late.removed, late.uncertain = False, False
            world.live[name] = late
        elif name not in world.live:
            world.violate(MODEL, f"fracta lists agent {name}, which the run never spawned or already removed")


def remember_runners(world: World, shown: dict[str, dict[str, Any]]) -> None:
    """Keep every (pid, start) a record named, to check later that nothing of it outlives its agent."""
    for name, data in shown.items():
        inc = world.live.get(name)
        pid = data.get("pid")
        if inc is not None and isinstance(pid, int):
            start = data.get("pid_start")
            inc.runners.add((pid, start if isinstance(start, int) else None))


def leftovers(world: World) -> tuple[set[str], set[str]]:
    """(names of worktrees, names of feature/* branches) that exist in git or under .fracta/worktrees/."""
    trees_dir = (world.state / "worktrees").resolve()
    trees: set[str] = set()
    for line in world.git("worktree", "list", "--porcelain").splitlines():
        if line.startswith("worktree "):
            path = Path(line.removeprefix("worktree ")).resolve()
            if path.parent == trees_dir:
                trees.add(path.name)
    if trees_dir.is_dir():
        trees.update(os.listdir(trees_dir))
    trees = {t for t in trees if not t.startswith(".")}  # spares (.spare-*) and fracta's own files
    branches = set(world.git("for-each-ref", "--format=%(refname:strip=3)", "refs/heads/feature/").split())
    return trees, branches


def check_orphans(world: World, shown: dict[str, dict[str, Any]]) -> None:
    world.checks[ORPHANS] += 1
    trees, branches = leftovers(world)
    for name in sorted(trees - set(shown)):
        world.violate(ORPHANS, f"worktree .fracta/worktrees/{name} belongs to no agent")
    for name in sorted(branches - set(shown)):
        world.violate(ORPHANS, f"branch feature/{name} belongs to no agent")


def _leftover_processes(world: World, incarnations: list[Incarnation]) -> dict[str, list[str]]:
    """ident -> what of that incarnation still runs (its program's processes, its runners)."""
    found: dict[str, list[str]] = {}
    running = procs.scan(world.run)
    for inc in incarnations:
        program = [p for p in running if p.environ.get("CHAOS_ID") == inc.ident]
        mine = [describe(world, program)] if program else []
        mine += [f"runner {pid}" for pid, start in sorted(inc.runners, key=str) if procs.alive(pid, start)]
        if mine:
            found[inc.ident] = mine
    return found


def describe(world: World, found: list[procs.Proc]) -> str:
    """The agent script's own process: stable from one look to the next, unlike its children."""
    main = [p for p in found if str(world.script) in p.cmdline] or found
    return f"pid {main[0].pid} ({main[0].cmdline.replace(str(world.script), 'agent.sh')[:60]})"


def check_removed_processes(world: World, incarnations: list[Incarnation] | None = None) -> None:
    """Nothing of a removed agent runs (after GRACE for processes already being stopped)."""
    removed = world.gone if incarnations is None else incarnations
    world.checks[REMOVED] += len(removed)
    if not _leftover_processes(world, removed):
        return
    wait_until(lambda: not _leftover_processes(world, removed), GRACE)
    for inc in removed:
        still = _leftover_processes(world, [inc]).get(inc.ident)
        if not still:
            continue
        world.violate(REMOVED, f"agent {inc.name} ({inc.ident}) was removed but still runs: {'; '.join(still)}")
        for proc in procs.of_incarnation(world.run, inc.ident):  # reported once; now stop it
            procs.sigkill(proc.pid, proc.start)
        for pid, start in inc.runners:
            procs.sigkill(pid, start)


def check_running_has_process(world: World, shown: dict[str, dict[str, Any]]) -> None:
    """An agent fracta shows `running` has a live process: its program, or the runner its record
    names (allowing GRACE for a status to catch up with an exit). `starting` is left to the
    reaper's own documented grace."""

    def suspects(listing: dict[str, dict[str, Any]]) -> dict[str, str]:
        found = {}
        for name, data in listing.items():
            inc, status, pid = world.live.get(name), data.get("status"), data.get("pid")
            if status != "running" or inc is None:
                continue
            start = data.get("pid_start")
            runner = isinstance(pid, int) and procs.alive(pid, start if isinstance(start, int) else None)
            if not runner and not procs.of_incarnation(world.run, inc.ident):
                found[name] = str(status)
        return found

    world.checks[RUNNING] += 1
    if not suspects(shown):
        return
    wait_until(lambda: not suspects(world.agents()[1]), GRACE, interval=1.0)
    for name, status in suspects(world.agents()[1]).items():
        world.violate(RUNNING, f"fracta shows {name} {status}, but no process of it has run for {GRACE:g}s")


def check_finished_has_no_process(world: World, shown: dict[str, dict[str, Any]]) -> None:
    """`lost` means nothing of the agent runs, never "running unsupervised"; the same for an agent
    that finished (allowing GRACE for the last children of an exited program to go)."""

    def suspects(listing: dict[str, dict[str, Any]]) -> dict[str, str]:
        found = {}
        for name, data in listing.items():
            inc = world.live.get(name)
            if data.get("status") in FINISHED and inc is not None:
                left = procs.of_incarnation(world.run, inc.ident)
                if left:
                    found[name] = f"{data.get('status')}, but its program still runs: {describe(world, left)}"
        return found

    world.checks[UNSUPERVISED] += 1
    if not suspects(shown):
        return
    wait_until(lambda: not suspects(world.agents()[1]), GRACE, interval=1.0)
    for name, what in suspects(world.agents()[1]).items():
        world.violate(UNSUPERVISED, f"fracta shows {name} {what}")


def check_lost(world: World, shown: dict[str, dict[str, Any]]) -> None:
    """A database away, a connection cut, a control plane stopped by `down`: none loses an agent."""
    world.checks[LOST] += 1
    for name, data in shown.items():
        inc = world.live.get(name)
        if data.get("status") == "lost" and inc is not None and not inc.may_be_lost:
            world.violate(LOST, f"{name} ({inc.ident}, {inc.behaviour}) is lost, but nothing of it was SIGKILLed")


def check_commits_reachable(world: World) -> None:
    """Every sha an agent logged is reachable from a ref (branches, tags, refs/fracta/archive/...)."""
    world.checks[REACHABLE] += 1
    logged = world.logged("commits.log")
    if not logged:
        return
    tips = world.git("for-each-ref", "--format=%(objectname)").split()
    reachable = set(world.git("rev-list", *sorted(set(tips))).split()) if tips else set()
    for ident, sha in logged:
        if sha not in reachable:
            world.violate(REACHABLE, f"commit {sha[:10]} by {ident} is on no branch, tag or archive ref")


def check_saved_work(world: World, inc: Incarnation, ref: str | None, dirty: list[str]) -> None:
    """After a forced kill: every uncommitted file `inc` logged is under `ref` with its content."""
    world.checks[SAVED] += 1
    if not dirty:
        return
    if ref is None:
        world.violate(SAVED, f"{inc.ident} left uncommitted {', '.join(dirty)} but kill --force saved nothing")
        return
    for path in dirty:
        expected = f"dirty {inc.ident}" if path == "README.md" else f"uncommitted {inc.ident}"
        content = world.git("show", f"{ref}:{path}", check=False)
        if expected not in content:
            world.violate(SAVED, f"{ref}:{path} lacks {expected!r} (has {content[:80]!r})")


def check_messages(world: World) -> None:
    """Each message read at most once by anyone; each one whose reader still exists read exactly once."""
    reads = world.reads.copy()
    for doc in world.agent_json_logs("read"):
        for msg in doc.get("messages", []):
            reads[str(msg.get("id"))] += 1
    sent = dict(world.sent)
    for doc in world.agent_json_logs("sent"):
        for msg in doc.get("sent", []):
            sent[str(msg.get("id"))] = (str(msg.get("to")), CHESSMASTER)
    live_idents = {inc.ident for inc in world.live.values()} | {CHESSMASTER}
    due = sum(1 for _, ident in sent.values() if ident in live_idents)
    world.note(
        f"messages: {len(sent)} sent by the run, {due} of them to readers still there; "
        f"{sum(reads.values())} reads in all (commit notices included)"
    )
    for msg_id, count in sorted(reads.items()):
        world.checks[EXACTLY_ONCE] += 1
        if count > 1:
            world.violate(EXACTLY_ONCE, f"message {msg_id} (to {sent.get(msg_id, ('?',))[0]}) was read {count} times")
    for msg_id, (to, ident) in sorted(sent.items()):
        world.checks[EXACTLY_ONCE] += 1
        if ident in live_idents and reads[msg_id] == 0:
            world.violate(EXACTLY_ONCE, f"message {msg_id} to {to} was sent (exit 0) but never read")


def scan_logs(world: World) -> None:
    """No traceback in control.log, control.out, any runner.log or agent output, or agents' CLI stderr."""
    logs = world.state / "logs"  # every control plane's (control.log, control-b.log, ...)
    paths = sorted([*logs.glob("control*.log"), *logs.glob("control*.out")]) if logs.is_dir() else []
    agents_dir = world.state / "agents"
    if agents_dir.is_dir():
        for entry in sorted(os.listdir(agents_dir)):
            paths += [agents_dir / entry / "runner.log", agents_dir / entry / "output.jsonl"]
    paths += sorted(world.logs.glob("stderr-*.txt"))
    for path in paths:
        world.checks[TRACEBACK] += 1
        try:
            lines = path.read_text(errors="replace").splitlines()
        except (FileNotFoundError, NotADirectoryError):
            continue
        for number, line in enumerate(lines):
            key = (str(path), number)
            if ("Traceback" in line or "this is a bug in fracta" in line) and key not in world.reported_lines:
                world.reported_lines.add(key)
                context = " | ".join(lines[number : number + 12])[:1500]
                world.violate(TRACEBACK, f"{path.relative_to(path.parents[2])} line {number + 1}: {context}")
