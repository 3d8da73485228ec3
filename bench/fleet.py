"""A fleet of 50 `command` agents spawned and reaped in one run.

Prints total time (spawn all -> all running -> all finished -> all reaped), the control plane's
CPU use while the agents idle, and its peak RSS. Baseline in the same run: an idle `sleep`
process's CPU over the same window (should be ~0), and a bare interpreter's RSS.
Run: .venv/bin/python bench/fleet.py [--agents 50] [--idle 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bytecode  # bench/bytecode.py, beside this script

BIN = Path(sys.executable).parent
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def statuses(root: Path) -> dict[str, str]:
    out = subprocess.run([str(BIN / "fracta"), "list", "--json"], cwd=root, capture_output=True, text=True)
    return {a["name"]: a["status"] for a in json.loads(out.stdout)["agents"]}


def wait(what: str, check, timeout: float = 600) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def main() -> None:
    bytecode.ensure()
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds to measure idle CPU over")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fracta-bench-fleet-", dir="/tmp") as tmp:
        root = Path(tmp) / "repo"
        root.mkdir()
        for cmd in (["git", "init", "-q", "-b", "main"], ["git", "commit", "-q", "--allow-empty", "-m", "i"]):
            subprocess.run(
                cmd,
                cwd=root,
                check=True,
                capture_output=True,
                env={
                    **os.environ,
                    "GIT_AUTHOR_NAME": "b",
                    "GIT_AUTHOR_EMAIL": "b@x",
                    "GIT_COMMITTER_NAME": "b",
                    "GIT_COMMITTER_EMAIL": "b@x",
                },
            )
        subprocess.run([str(BIN / "fracta"), "init"], cwd=root, check=True, capture_output=True)
        cfg = root / "fracta.yaml"
        cfg.write_text(
            cfg.read_text()
            .replace("max_agents: 4", f"max_agents: {args.agents}")
            .replace("ttl: 86400", "ttl: 0")
            .replace("sweep_interval: 60", "sweep_interval: 2")
        )
        subprocess.run([str(BIN / "fracta"), "up"], cwd=root, check=True, capture_output=True)
        pid = json.loads((root / ".fracta" / "control.json").read_text())["pid"]
        gate = Path(tmp) / "go"
        names = [f"a{i}" for i in range(args.agents)]
        try:
            t0 = time.perf_counter()
            for name in names:
                subprocess.run(
                    [
                        str(BIN / "fracta"),
                        "spawn",
                        name,
                        "--",
                        "sh",
                        "-c",
                        f"while [ ! -e {gate} ]; do sleep 0.5; done",
                    ],
                    cwd=root,
                    check=True,
                    capture_output=True,
                )
            t_spawned = time.perf_counter()
            wait("all running", lambda: set(statuses(root).values()) == {"running"})
            t_running = time.perf_counter()
            idler = subprocess.Popen(["sleep", "3600"])
            c0, i0 = cpu_seconds(pid), cpu_seconds(idler.pid)
            time.sleep(args.idle)
            c1, i1 = cpu_seconds(pid), cpu_seconds(idler.pid)
            idler.kill()
            t_idle = time.perf_counter()
            gate.touch()
            wait("all finished", lambda: set(statuses(root).values()) <= {"done"})
            t_done = time.perf_counter()
            wait("all reaped", lambda: not statuses(root))
            t_reaped = time.perf_counter()
            rss = peak_rss_mib(pid)
        finally:
            subprocess.run([str(BIN / "fracta"), "down"], cwd=root, capture_output=True)
        bare = subprocess.run(
            [sys.executable, "-c", "import resource;print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"],
            capture_output=True,
            text=True,
        )
        active = (t_spawned - t0) + (t_running - t_spawned) + (t_done - t_idle) + (t_reaped - t_done)
        print(f"{args.agents} command agents, max_agents={args.agents}, repo on /tmp (disk)")
        print(
            f"{'spawn all (CLI, sequential)':40} {t_spawned - t0:8.2f} s  "
            f"({(t_spawned - t0) / args.agents * 1000:.0f} ms/agent)"
        )
        print(f"{'until all running':40} {t_running - t_spawned:8.2f} s")
        print(f"{'release -> all done':40} {t_done - t_idle:8.2f} s")
        print(f"{'done -> all reaped (ttl 0, sweep 2 s)':40} {t_reaped - t_done:8.2f} s")
        print(f"{'total (excluding the idle window)':40} {active:8.2f} s")
        print(
            f"{'control plane CPU while idle':40} {(c1 - c0) / args.idle * 100:8.2f} %  "
            f"(baseline sleep process: {(i1 - i0) / args.idle * 100:.2f} %)"
        )
        print(f"{'control plane peak RSS':40} {rss:8.1f} MiB  (bare python: {int(bare.stdout) / 1024:.1f} MiB)")


if __name__ == "__main__":
    main()
