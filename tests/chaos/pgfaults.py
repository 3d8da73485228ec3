"""The postgres backend's chaos: the database's own faults, a second control plane, and the
promises several control planes on one store make (read through fracta's store, never its files).

Faults: every fracta connection terminated (pg_terminate_backend) at a random moment; the server
crashed (`pg_ctl stop -m immediate`) and restarted while a keyed send races the outage; a second
control plane (`fracta up --instance b`) started and SIGKILLed. The run's fracta.yaml lowers
state.lease_seconds to 2 and reaper.sweep_interval to 1, so takeovers happen within the run.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from fracta import events

from . import procs
from .world import ACTIVE, CHESSMASTER, World, wait_until

if TYPE_CHECKING:
    from .plan import Step  # plan -> bad_inputs -> invariants -> here

LEASE = 2.0  # state.lease_seconds in the run's fracta.yaml
MARGIN = 10.0  # beyond a lease: a takeover needs a supervisor pass (sweep_interval 1 s) and a busy machine
SUPERVISED = "every live agent has one supervisor whose lease is current: a live control plane"
CLAIMS = "no mission stays claimed by a dead control plane past its lease and a margin"
STARTED_ONCE = "each spawned agent is started at most once (no mission runs twice)"
KEYED = "a send retried with its idempotency key after exit 8 is stored once and read once"
RETRIES = 5  # a keyed send is retried this many times at most after exit 8 (the database is back)


# -- operations ------------------------------------------------------------------------------------


def kill_connections(world: World, step: Step) -> None:
    """Terminate every connection to the run's database but ours, as a network cut would."""
    with world.server.admin(world.dbname) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    world.note(f"   terminated {sum(1 for r in rows if r[0])} connection(s)")


def restart(world: World, step: Step) -> None:
    """Crash the server and bring it back after `detail` tenths of a second; a keyed send to
    `target` started just before races the outage. Exit 8 means "may or may not have happened":
    the send is repeated with the same key until it succeeds, and must then be stored once."""
    to, down = step.target, int(step.detail) / 10
    body = f"keyed chaos to {to} at step {world.step}"
    key = f"chaos-{world.step}"
    args = ("say", to, body, "--from", CHESSMASTER, "--idempotency-key", key, "--json")
    started = world.start(*args)
    time.sleep(0.2)  # its interpreter starting: the outage comes while it imports or talks
    world.server.restart(down_for=down)
    world.note(f"   the database crashed and came back after {down:g}s")
    call = world.finish(started)
    world.expect(call, {0, 8}, "a send racing a database crash")
    attempts = 0
    while call.returncode == 8 and attempts < RETRIES:
        attempts += 1
        call = world.cli(*args)
    if not world.expect(call, {0}, "a keyed send repeated once the database is back") or call.returncode != 0:
        return
    for msg in call.json().get("sent", []):
        inc = world.live.get(to)
        world.sent[str(msg.get("id"))] = (to, inc.ident if inc else CHESSMASTER)
        world.keyed[body] = (to, inc.ident if inc else CHESSMASTER)


def up_b(world: World, step: Step) -> None:
    world.expect(world.cli("up", "--instance", "b"), {0}, "up of a second control plane")


def sigkill_cp_b(world: World, step: Step) -> None:
    found = control_pid(world, "b")
    hit = found is not None and procs.sigkill(*found)
    if found is not None and hit and not wait_until(lambda: not procs.alive(*found), 10.0):
        raise AssertionError(f"control plane b (pid {found[0]}) did not die within 10s of SIGKILL")
    if hit:
        world.control_plane_killed()
    world.note(f"   control plane b {'SIGKILLed' if hit else 'was not running'}")


def control_pid(world: World, instance: str | None = None) -> tuple[int, int | None] | None:
    """The (pid, start) of a running control plane from its control*.json, or None."""
    name = f"control-{instance}.json" if instance else "control.json"
    try:
        data = json.loads((world.state / name).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    pid, start = data.get("pid"), data.get("pid_start")
    return (pid, start) if isinstance(pid, int) and procs.alive(pid, start) else None


# -- invariants ------------------------------------------------------------------------------------


def _owner_alive(owner: str | None) -> bool:
    """A control plane's owner string is host:pid:start (control/server.py), on this host here."""
    parts = (owner or "").split(":")
    if len(parts) < 3 or not parts[1].isdigit():
        return False
    start = int(parts[2]) if parts[2].isdigit() and int(parts[2]) else None
    return procs.alive(int(parts[1]), start)


def _rows(world: World, sql: str) -> list[tuple[Any, ...]]:
    store: Any = world.fracta.store  # PostgresStore: its Database runs (and retries) one query
    return list(store.db.run(lambda c: c.execute(sql).fetchall()))


def check(world: World) -> None:
    """The several-control-planes promises, at a quiet moment between operations."""
    if world.backend != "postgres":
        return
    check_supervisors(world)
    check_claims(world)
    check_started_once(world)


def check_supervisors(world: World) -> None:
    """Every active agent is supervised by a live control plane under a current lease, once any
    control plane runs (after a death: within its lease and a margin)."""
    world.checks[SUPERVISED] += 1
    if control_pid(world) is None and control_pid(world, "b") is None:
        return

    def unsupervised() -> dict[str, str]:
        active = {n for n, a in world.agents()[1].items() if a.get("status") in ACTIVE - {"queued"}}
        found = {}
        rows = _rows(world, "SELECT name, supervisor, supervised_until > clock_timestamp() FROM agent_state")
        for name, owner, current in rows:
            if name in active and not (current and _owner_alive(owner)):
                found[name] = f"supervisor {owner} ({'current' if current else 'lease ran out'}, " + (
                    "alive)" if _owner_alive(owner) else "dead)"
                )
        return found

    if not unsupervised():
        return
    wait_until(lambda: not unsupervised(), LEASE + MARGIN, 0.5)
    for name, what in unsupervised().items():
        world.violate(SUPERVISED, f"{name}: {what}, {LEASE + MARGIN:g}s after it was first seen so")


def check_claims(world: World) -> None:
    """A claim of a dead control plane ends with its lease: the mission is pending again (another
    control plane starts it once a slot is free), never held on."""
    world.checks[CLAIMS] += 1
    sql = (
        "SELECT id, name, claimed_by, extract(epoch FROM clock_timestamp() - lease_until)"
        " FROM missions WHERE claimed_by IS NOT NULL"
    )
    pending = {m.id for m in world.fracta.store.missions.pending()[0]}
    for mission_id, name, owner, overdue in _rows(world, sql):
        if _owner_alive(owner):
            continue
        if overdue is None or float(overdue) < -LEASE - 1:  # a lease longer than lease_seconds
            ahead = -float(overdue or 0)
            world.violate(CLAIMS, f"mission {mission_id} ({name}) of dead {owner} leases {ahead:.1f}s ahead")
        elif float(overdue) > MARGIN and str(mission_id) not in {str(p) for p in pending}:
            late = f"lease over {float(overdue):.1f}s ago, and it is not pending"
            world.violate(CLAIMS, f"mission {mission_id} ({name}) of dead {owner}: {late}")


def check_started_once(world: World) -> None:
    """agent.started events (the store's event log) of a name never outnumber its incarnations."""
    world.checks[STARTED_ONCE] += 1
    lives: dict[str, int] = {}
    for inc in [*world.live.values(), *world.gone, *world.unsettled.values()]:
        lives[inc.name] = lives.get(inc.name, 0) + 1
    starts: dict[str, int] = {}
    for event in events.read(world.fracta):
        if event.data.get("event") == "agent.started":
            name = str(event.data.get("agent"))
            starts[name] = starts.get(name, 0) + 1
    for name, count in sorted(starts.items()):
        if count > lives.get(name, 0):
            world.violate(STARTED_ONCE, f"{name} started {count} times, spawned {lives.get(name, 0)} time(s)")


def check_keyed(world: World) -> None:
    """At the run's end: each keyed send (retried after exit 8) read exactly once by its reader,
    by its text: a second copy stored under another id would be read too."""
    reads = world.read_bodies.copy()
    for doc in world.agent_json_logs("read"):
        for msg in doc.get("messages", []):
            reads[str(msg.get("body"))] += 1
    live = {inc.ident for inc in world.live.values()} | {CHESSMASTER}
    for body, (to, ident) in sorted(world.keyed.items()):
        world.checks[KEYED] += 1
        count = reads[body]
        if count > 1 or (count == 0 and ident in live):
            world.violate(KEYED, f"{body!r} to {to} was read {count} times")
