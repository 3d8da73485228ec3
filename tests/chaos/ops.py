"""The operations: each runs one concrete Step through the real CLI (or a real signal) and checks
what that step alone promises (its exit code, a merge's effect, a forced kill's saved work)."""

from __future__ import annotations

import time
from collections.abc import Callable

from . import agent, bad_inputs, invariants, pgfaults, procs
from .plan import Step
from .world import ACTIVE, CHESSMASTER, World, wait_until

MERGE = "a merge brings in every commit the agent had made, and a failed merge changes nothing"
KILL_SAFE = "kill without --force never drops work that exists nowhere else"
DAMAGED = "a damaged record is reported (exit 6) and hides nothing else"
SPAWN_WINDOW = 30.0  # bound on waiting for a spawn to reach the point where the control plane dies


def spawn(world: World, step: Step) -> None:
    inc = world.new_incarnation(step.target, step.detail)
    call = world.cli(
        "spawn", step.target, "--json", "--", *agent.command(world.script, world.run, inc.ident, step.detail)
    )
    # A name is never reused while anything of its old agent runs: then a refusal is right too.
    old_running = any(procs.of_incarnation(world.run, g.ident) for g in world.gone if g.name == step.target)
    if world.expect(call, {0, 4} if old_running else {0}, "spawn of a free name") and call.returncode == 0:
        world.live[step.target] = inc


def spawn_kill(world: World, step: Step) -> None:
    """Spawn, then at once kill --force: the kill races the agent's start (queued or starting)."""
    spawn(world, step)
    if step.target in world.live:
        kill(world, Step("kill-force", step.target), force=True)


def spawn_sigkill_cp(world: World, step: Step) -> None:
    """Spawn, and SIGKILL the control plane as soon as the agent's worktree starts to appear."""
    inc = world.new_incarnation(step.target, step.detail)
    command = agent.command(world.script, world.run, inc.ident, step.detail)
    started = world.start("spawn", step.target, "--json", "--", *command)
    tree = world.state / "worktrees" / step.target
    deadline = time.monotonic() + SPAWN_WINDOW
    while started[1].poll() is None and not tree.exists() and time.monotonic() < deadline:
        time.sleep(0.001)
    killed = _sigkill_control_plane(world)
    world.note(f"   control plane {'SIGKILLed' if killed else 'was not running'} as {tree.name}'s worktree appeared")
    call = world.finish(started)
    world.expect(call, {0, 8}, "spawn whose control plane was SIGKILLed")
    inc.uncertain = True  # settled by what fracta shows once a control plane runs again
    inc.may_be_lost = True
    world.live[step.target] = inc
    world.expect(world.cli("up"), {0}, "up after a crash")
    # The restarted control plane may adopt what the interrupted spawn left: give it a bounded
    # moment to settle (the agent listed, or no worktree or branch of that name left).
    wait_until(lambda: _spawn_settled(world, step.target), invariants.GRACE, 0.5)
    invariants.reconcile_model(world, world.agents()[1])


def _spawn_settled(world: World, name: str) -> bool:
    if name in world.agents()[1]:
        return True
    trees, branches = invariants.leftovers(world)
    return name not in trees and name not in branches


def _sigkill_control_plane(world: World) -> bool:
    found = pgfaults.control_pid(world)
    if found is None or not procs.sigkill(*found):
        return False
    if not wait_until(lambda: not procs.alive(*found), 10.0):
        raise AssertionError(f"the control plane (pid {found[0]}) did not die within 10s of SIGKILL")
    world.control_plane_killed()
    return True


def sigkill_cp(world: World, step: Step) -> None:
    world.note(f"   control plane {'SIGKILLed' if _sigkill_control_plane(world) else 'was not running'}")


def sigkill_runner(world: World, step: Step) -> None:
    shown = world.agents()[1].get(step.target, {})
    pid, start = shown.get("pid"), shown.get("pid_start")
    if isinstance(pid, int):
        world.live[step.target].runners.add((pid, start if isinstance(start, int) else None))
    world.live[step.target].may_be_lost = True
    hit = isinstance(pid, int) and procs.sigkill(pid, start if isinstance(start, int) else None)
    left = procs.of_incarnation(world.run, world.live[step.target].ident)
    world.note(
        f"   runner {pid} {'SIGKILLed' if hit else 'not running'} ({shown.get('status')}); "
        f"its program: {len(left)} process(es)"
    )


def sigkill_agent(world: World, step: Step) -> None:
    inc = world.live[step.target]
    programs = [p for p in procs.of_incarnation(world.run, inc.ident) if str(world.script) in p.cmdline]
    for proc in programs:
        procs.sigkill(proc.pid, proc.start)
    world.note(f"   {'SIGKILLed ' + str(programs[0].pid) if programs else 'no program running'}")


def sigkill_all(world: World, step: Step) -> None:
    """SIGKILL the runner and the agent's program at once (as the OOM killer or a user might)."""
    sigkill_runner(world, step)
    inc = world.live[step.target]
    programs = procs.of_incarnation(world.run, inc.ident)
    for proc in programs:
        procs.sigkill(proc.pid, proc.start)
    world.note(f"   SIGKILLed {len(programs)} process(es) of its program")


def merge(world: World, step: Step) -> None:
    inc = world.live[step.target]
    mine = [sha for ident, sha in world.logged("commits.log") if ident == inc.ident]
    before = _main_state(world)
    call = world.cli("merge", step.target, "--json")
    may_conflict = inc.behaviour == "conflict" or inc.uncertain
    world.expect(call, {0, 4} if may_conflict else {0}, "merge of an agent")
    world.checks[MERGE] += 1
    if call.returncode == 0:
        head = world.git("rev-parse", "HEAD")
        missing = [sha for sha in mine if not world.is_ancestor(sha, head)]
        if missing:
            world.violate(MERGE, f"merge of {step.target} exited 0 but main lacks {', '.join(s[:10] for s in missing)}")
    else:
        after = _main_state(world)
        if after != before:
            world.violate(
                MERGE, f"merge of {step.target} failed ({call.returncode}) but changed main: {before} -> {after}"
            )


def _main_state(world: World) -> tuple[str, str, str]:
    """What a failed merge must leave as it was: main's HEAD, the main worktree, shared.txt."""
    return world.git("rev-parse", "HEAD"), world.git("status", "--porcelain"), (world.root / "shared.txt").read_text()


def kill(world: World, step: Step, force: bool = False) -> None:
    kill_together(world, [step.target], force)


def kill_pair(world: World, step: Step) -> None:
    """Kill two agents --force at once: when one frees a slot, the other may be about to start."""
    kill_together(world, [step.target, step.detail], force=True)


def kill_together(world: World, names: list[str], force: bool) -> None:
    """`fracta kill` of every agent in `names`, all started before any is waited for."""
    invariants.scan_logs(world)  # their runner.log and output go with them
    flag = ["--force"] if force else []
    # What each agent had logged as left uncommitted before the kill began must be saved.
    dirty = {name: [p for ident, p in world.logged("dirty.log") if ident == world.live[name].ident] for name in names}
    started = [(name, world.start("kill", name, "--json", *flag)) for name in names]
    for name, proc in started:
        inc = world.live[name]
        call = world.finish(proc)
        if not world.expect(call, {0} if force else {0, 5}, "kill --force" if force else "kill"):
            continue
        if call.returncode != 0:
            continue
        world.forget(name)
        if force:
            saved = call.json().get("saved") or {}
            ref = saved.get("ref") if isinstance(saved, dict) else None
            if ref:
                inc.saved_refs.append(str(ref))
            invariants.check_saved_work(world, inc, str(ref) if ref else None, dirty[name])
        else:
            world.checks[KILL_SAFE] += 1
            if dirty[name]:
                world.violate(KILL_SAFE, f"kill {name} exited 0 and removed its uncommitted {', '.join(dirty[name])}")
        invariants.check_removed_processes(world, [inc])


def say(world: World, step: Step, sender: str = CHESSMASTER) -> None:
    to = CHESSMASTER if sender != CHESSMASTER else step.target
    call = world.cli("say", to, f"chaos from {sender} at step {world.step}", "--from", sender, "--json")
    # Stored is sent (exit 0), also to an agent that will never read it (lost, failed): the JSON says so.
    if world.expect(call, {0}, "a message between existing participants") and call.returncode == 0:
        for msg in call.json().get("sent", []):
            target = str(msg.get("to"))
            inc = world.live.get(target)
            world.sent[str(msg.get("id"))] = (target, inc.ident if inc else CHESSMASTER)


def inbox(world: World, step: Step) -> None:
    damaged = step.target in world.garbage
    call = world.cli("inbox", step.target, "--json")
    world.expect(call, {6} if damaged else {0}, "an inbox read" + (" with a garbage file in it" if damaged else ""))
    for msg in call.json().get("messages", []):
        world.reads[str(msg.get("id"))] += 1
        world.read_bodies[str(msg.get("body"))] += 1
    if damaged:  # reported once; now clear it, as the user told by the error would
        for path in (world.state / _inbox(step.target) / "new").glob("*.garbage"):
            path.unlink()
        world.garbage.discard(step.target)


def _inbox(name: str) -> str:
    return "chessmaster/inbox" if name == CHESSMASTER else f"agents/{name}/inbox"


def garbage_message(world: World, step: Step) -> None:
    folder = world.state / _inbox(step.target) / "new"
    (folder / f"{world.step:019d}.garbage").write_bytes(b"\x00\xff this is not a message \n\n\xfe")
    world.garbage.add(step.target)


def damage_record(world: World, step: Step) -> None:
    """Truncate a finished agent's agent.json: list and kill report it (exit 6); then repair it."""
    _, shown = world.agents()
    if shown.get(step.target, {}).get("status") in ACTIVE or step.target not in shown:
        world.note("   skipped: the agent is not finished (its runner may rewrite the record)")
        return
    path = world.state / "agents" / step.target / "agent.json"
    original = path.read_bytes()
    path.write_bytes(original[: len(original) // 2])
    try:
        listed = world.cli("list", "--json")
        world.expect(listed, {6}, "list with a damaged record")
        others = {str(a.get("name")) for a in listed.json().get("agents", [])}
        world.checks[DAMAGED] += 1
        hidden = set(shown) - others - {step.target}
        if hidden or not listed.json().get("problems"):
            world.violate(DAMAGED, f"list hid {sorted(hidden)} or did not report {path}: {listed.stdout[:300]}")
        world.expect(world.cli("kill", step.target), {6}, "kill of an agent whose record is damaged")
    finally:
        path.write_bytes(original)


def down_up(world: World, step: Step) -> None:
    world.expect(world.cli("down"), {0}, "down")
    world.expect(world.cli("up"), {0}, "up")


def main_commit(world: World, step: Step) -> None:
    """The chessmaster changes shared.txt on main, so `conflict` agents' branches conflict."""
    (world.root / "shared.txt").write_text(f"main at step {world.step}\n")
    world.git("commit", "-q", "-am", f"main: shared.txt at step {world.step}")


def bad(world: World, step: Step) -> None:
    bad_inputs.run(world, int(step.target))


def check(world: World, step: Step) -> None:
    invariants.check_as_it_goes(world)


OPERATIONS: dict[str, Callable[[World, Step], None]] = {
    "spawn": spawn,
    "spawn-sigkill-cp": spawn_sigkill_cp,
    "spawn-kill": spawn_kill,
    "merge": merge,
    "kill": kill,
    "kill-force": lambda w, s: kill(w, s, force=True),
    "kill-pair": kill_pair,
    "say": say,
    "say-from": lambda w, s: say(w, s, sender=s.target),
    "inbox": inbox,
    "sigkill-cp": sigkill_cp,
    "sigkill-runner": sigkill_runner,
    "sigkill-agent": sigkill_agent,
    "sigkill-all": sigkill_all,
    "down-up": down_up,
    "main-commit": main_commit,
    "bad": bad,
    "damage-record": damage_record,
    "garbage-message": garbage_message,
    "check": check,
    "pg-kill-conns": pgfaults.kill_connections,
    "pg-restart": pgfaults.restart,
    "up-b": pgfaults.up_b,
    "sigkill-cp-b": pgfaults.sigkill_cp_b,
}


AGENT_STEPS = {"merge", "kill", "kill-force", "say-from", "sigkill-runner", "sigkill-agent", "sigkill-all"}


def perform(world: World, step: Step) -> None:
    """Run `step`; a step naming an agent the world no longer has is skipped (a replayed log's
    agent may not exist this time)."""
    wanted = [step.target, step.detail] if step.kind == "kill-pair" else []
    wanted += [step.target] if step.kind in AGENT_STEPS else []
    missing = [name for name in wanted if name not in world.live]
    if missing:
        world.note(f"   skipped: no agent {', '.join(missing)}")
        return
    OPERATIONS[step.kind](world, step)


def finish(world: World) -> None:
    """The run's end: release the agents, let them finish, read every inbox, force-kill everyone,
    and check that nothing is left: no agent, worktree, branch, process or lost commit."""
    world.note("end: release every agent, read every inbox, kill --force every agent")
    world.gate.touch()
    world.expect(world.cli("up"), {0}, "up at the end (queued agents need a control plane to start)")
    if not wait_until(lambda: not [n for n, a in world.agents()[1].items() if a.get("status") in ACTIVE], 60.0, 1.0):
        stuck = {n: a.get("status") for n, a in world.agents()[1].items() if a.get("status") in ACTIVE}
        world.violate(invariants.RUNNING, f"released agents, with a control plane up, never finished (60s): {stuck}")
    invariants.check_as_it_goes(world)
    for name in [*world.names(), CHESSMASTER]:
        inbox(world, Step("inbox", name))
    invariants.check_messages(world)
    pgfaults.check_keyed(world)
    for name in world.names():
        kill(world, Step("kill-force", name), force=True)
    invariants.check_as_it_goes(world)
    trees, branches = invariants.leftovers(world)
    if trees or branches:
        world.violate(invariants.ORPHANS, f"after every agent was removed: worktrees {trees}, branches {branches}")
    world.expect(world.cli("down"), {0}, "down at the end")
    invariants.check_removed_processes(world)
    invariants.scan_logs(world)
    for inc in world.gone:
        for ref in inc.saved_refs:
            if not world.git("rev-parse", "--verify", "--quiet", ref, check=False):
                world.violate(invariants.SAVED, f"archive ref {ref} of {inc.ident} is gone")
