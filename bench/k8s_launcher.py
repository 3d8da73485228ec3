"""The Kubernetes Job launcher's own overhead per spawn and per wake, beside the local launcher's.

Run: .venv/bin/python bench/k8s_launcher.py [--rounds 100]

Both launchers start the same turns on the same PostgreSQL store (started here as the test suite
starts it, tests/pg.py), against kmock as the Kubernetes API (tests/kube_mock.py, on 127.0.0.1).
A turn is prepared by fracta's spawner as usual (the runtime's launch, launch.json, `starting`);
what is timed is the launcher's call alone, the spawner's LaunchRunner:

  k8s        KubernetesLauncher.start: the agent's record read from the store, the Job manifest
             built, the session's HOME made on the volume, the Job created through the official
             client, its answer read.
  api        inside that same call, the client's create call timed on its own (Api.create_job,
             wrapped here): the client's serialisation and validation, the HTTP exchange and
             kmock's handling. A real API server's time would replace kmock's; none is fracta's.
  overhead   k8s - api, per turn: the time spent in fracta alone. Its p50/p99 are the figures.
             (A separate bare create after each call was tried first: two noisy ~25 ms round
             trips on a busy machine, subtracted, gave negative medians. Timing the very request
             inside the call removes the second round trip's noise.)
  local      LocalLauncher.start, as the control plane runs it: a warm spare runner handed the
             agent's name (the default), and `cold`, a runner started by spawn_detached.

Spawns run the `command` runtime; wakes resume a `claude` session (the adapter adds --resume; the
binary is /bin/true, so a local wake's runner ends at once). ratio = k8s overhead / local launch,
both p50, measured in the same run. No target: the figures are for the record (issue 16).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bytecode  # bench/bytecode.py, beside this script

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import pg  # tests/pg.py: the test suite's PostgreSQL server
import store_helpers  # tests/store_helpers.py: a repo's state folder as fracta init leaves it
from kube_mock import NAMESPACE, KubeMock  # tests/kube_mock.py: kmock in a thread

from fracta import agents, lifecycle, spawner, wake
from fracta.launchers import Started
from fracta.launchers.kubernetes.api import Api
from fracta.launchers.kubernetes.launcher import KubernetesLauncher
from fracta.launchers.kubernetes.settings import Settings
from fracta.launchers.local import LocalLauncher, spawn_detached
from fracta.repo import Repo

URLS = spawner.Urls(control="http://fracta-control:8000", gateway="http://fracta-gateway:8765")
Launch = Callable[[Repo, str, str], Started]


def cold(repo: Repo, name: str, launch_id: str) -> Started:
    """A runner started without a spare, as the local launcher does when none is warm."""
    return Started(*spawn_detached(repo, name, launch_id))


@dataclasses.dataclass
class Times:
    launch: list[float] = dataclasses.field(default_factory=list)
    api: list[float] = dataclasses.field(default_factory=list)

    @property
    def overhead(self) -> list[float]:
        return [a - b for a, b in zip(self.launch, self.api, strict=True)] if self.api else self.launch


def make_repo(base: Path, url: str) -> Repo:
    config = (
        f"state:\n  backend: postgres\n  url: {url}\n"
        "agents:\n  max_agents: 100000\n  agent_runtimes:\n    claude:\n      binary: /bin/true\n"
    )
    return store_helpers.make_repo(base / "volume", config)


def timed(launch: Launch, into: list[float]) -> Launch:
    def run(repo: Repo, name: str, launch_id: str) -> Started:
        t0 = time.perf_counter()
        found = launch(repo, name, launch_id)
        into.append(time.perf_counter() - t0)
        return found

    return run


def spawn(repo: Repo, name: str, runtime: str) -> None:
    args = ("true",) if runtime == "command" else ()
    prompt = "do the task" if runtime != "command" else None
    req = lifecycle.SpawnRequest(name=name, runtime=runtime, prompt=prompt, args=args, workspace=repo.root / name)
    lifecycle.spawn(repo, req)


class TimedApi(Api):
    """The launcher's API, with each Job creation's round trip noted (the API's share of a launch)."""

    def __init__(self, namespace: str, config: Any) -> None:
        super().__init__(namespace, config)
        self.creates: list[float] = []

    def create_job(self, manifest: dict[str, Any]) -> dict[str, Any]:
        t0 = time.perf_counter()
        try:
            return super().create_job(manifest)
        finally:
            self.creates.append(time.perf_counter() - t0)


def turn(repo: Repo, name: str, runtime: str, wake_it: bool, launch: Launch) -> None:
    """Start `name`'s turn through the spawner: a spawn, or a wake of its idle session."""
    if wake_it:
        agents.update(repo, name, status=agents.Status.IDLE, session_id=f"session-{name}", pid=None)
        assert wake.resume(repo, name)
    else:
        spawn(repo, name, runtime)
    assert spawner.schedule(repo, URLS, launch) == [name]


def measure(repo: Repo, kube: KubeMock, rounds: int) -> dict[str, Times]:
    settings = Settings(namespace=NAMESPACE, image="fracta-agent", pvc="workspace", mount_path=str(repo.root))
    api = TimedApi(NAMESPACE, kube.configuration())
    k8s = KubernetesLauncher(repo, settings, api)
    local = LocalLauncher(repo, refill_delay=3600)  # refilled by hand, between measurements
    results = {key: Times() for key in ("k8s spawn", "k8s wake", "local spawn", "local wake", "local cold")}
    try:
        for i in range(rounds):
            for kind, runtime, wake_it in (("spawn", "command", False), ("wake", "claude", True)):
                name = f"k{kind[0]}{i}"
                if wake_it:
                    spawn(repo, name, runtime)  # its first turn, not timed
                    assert spawner.schedule(repo, URLS, k8s.start) == [name]
                times = results[f"k8s {kind}"]
                turn(repo, name, runtime, wake_it, timed(k8s.start, times.launch))
                times.api.append(api.creates[-1])
                local.refill()
                time.sleep(0.3)  # the spare's imports done: a handoff, as after a quiet second
                name = f"l{kind[0]}{i}"
                if wake_it:
                    spawn(repo, name, runtime)
                    assert spawner.schedule(repo, URLS, cold) == [name]
                    wait_finished(repo, name)
                turn(repo, name, runtime, wake_it, timed(local.start, results[f"local {kind}"].launch))
            name = f"lc{i}"
            turn(repo, name, "command", False, timed(cold, results["local cold"].launch))
    finally:
        local.close()
        k8s.close()
    return results


def wait_finished(repo: Repo, name: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while agents.load(repo, name).status not in (agents.Status.IDLE, agents.Status.DONE, agents.Status.FAILED):
        if time.monotonic() > deadline:
            raise SystemExit(f"the local runner of {name} did not finish")
        time.sleep(0.02)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def report(results: dict[str, Times]) -> None:
    print(f"{'row':<12} {'p50 ms':>8} {'p99 ms':>8}   {'launch p50':>10} {'api p50':>8}")
    for key, times in results.items():
        over = times.overhead
        api = f"{statistics.median(times.api) * 1e3:8.2f}" if times.api else f"{'-':>8}"
        print(
            f"{key:<12} {pct(over, 50) * 1e3:8.2f} {pct(over, 99) * 1e3:8.2f}   "
            f"{statistics.median(times.launch) * 1e3:10.2f} {api}"
        )
    for kind in ("spawn", "wake"):
        k8s, local = pct(results[f"k8s {kind}"].overhead, 50), pct(results[f"local {kind}"].overhead, 50)
        cold = pct(results["local cold"].overhead, 50)
        print(f"ratio {kind}: k8s overhead / local (warm) = {k8s / local:.1f}x; / local (cold) = {k8s / cold:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=100)
    opts = parser.parse_args()
    bytecode.ensure()
    reason = pg.unavailable_reason()
    if reason:
        raise SystemExit(f"no PostgreSQL: {reason}")
    bindir = pg.find_bindir()
    assert bindir is not None
    server = pg.start(bindir)
    kube = KubeMock()
    try:
        with tempfile.TemporaryDirectory(prefix="fracta-bench-k8s-", dir="/tmp") as tmp:
            repo = make_repo(Path(tmp), server.url(server.create_database()))
            try:
                results = measure(repo, kube, opts.rounds)
            finally:
                if "store" in repo.__dict__:
                    repo.store.close()
        print(f"{opts.rounds} turns of each kind; ms per launcher call (k8s: minus the API round trip)")
        report(results)
    finally:
        kube.stop()
        server.stop()


if __name__ == "__main__":
    main()
