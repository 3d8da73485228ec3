"""`fracta list` cold wall time with 100 agents, against `python -c pass`, same run.

Run: .venv/bin/python bench/list_cold.py [--agents 100] [--reps 40]

"Cold" means a new process each time, as when a user or an agent's shell runs the command (the
files are in the page cache; nothing is cached between runs in fracta itself). Both commands use
the same interpreter (this venv's python), are run alternately, and are timed from spawn to
exit; the figures are medians. Target: `fracta list` <= 6x `python -c pass`.

Also prints `python -X importtime -m fracta list`'s top offenders (self time, then cumulative
time of fracta's own modules), and whether any heavy module was imported on the list path.

The repository (100 agents created with the library, a few messages) lives in a temporary
folder under /tmp, removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bytecode  # bench/bytecode.py, beside this script

from fracta import agents, mailbox, project
from fracta import repo as repo_mod

TARGET = 6.0
# Never to be imported on the fast paths (DESIGN.md, principle 7), plus what list does not need.
HEAVY = (
    "mcp",
    "uvicorn",
    "starlette",
    "psycopg",
    "kubernetes",
    "falkordb",
    "httpx",
    "anyio",
    "yaml",
    "watchdog",
    "pydantic",
)


def make_repo(folder: Path, count: int) -> Path:
    root = folder / "project"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    r = repo_mod.find(root, env={})
    project.init(r)
    for i in range(count):
        name = f"agent-{i:03d}"
        # The record as `join` writes it, without regenerating progress.md 100 times.
        agents.create(r, agents.new(name, "manual", agents.Status.RUNNING, kind="joined", intent=f"task number {i}"))
    for i in range(0, count, 10):
        mailbox.send(r, "chessmaster", f"agent-{i:03d}", f"message {i}")
    return root


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("FRACTA_", "GIT_", "PYTHON"))}


def wall(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    began = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - began
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.decode()}")
    return elapsed


def importtime(cwd: Path, env: dict[str, str], top: int) -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "fracta", "list"], cwd=cwd, env=env, capture_output=True, text=True
    )
    rows: list[tuple[int, int, str]] = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line.removeprefix("import time:").split("|")
        rows.append((int(own), int(cumulative), name.rstrip()))
    total = sum(r[0] for r in rows)
    print(f"\npython -X importtime -m fracta list: {len(rows)} modules, {total / 1000:.1f} ms in imports")
    print(f"top {top} by self time:")
    for self_us, cumulative_us, name in sorted(rows, reverse=True)[:top]:
        print(f"  {self_us / 1000:6.1f} ms self {cumulative_us / 1000:6.1f} ms cumulative  {name.strip()}")
    print("fracta's modules by cumulative time:")
    ours = sorted((r for r in rows if r[2].strip().startswith("fracta")), key=lambda r: -r[1])
    for self_us, cumulative_us, name in ours[:top]:
        print(f"  {self_us / 1000:6.1f} ms self {cumulative_us / 1000:6.1f} ms cumulative  {name}")
    heavy = sorted({r[2].strip() for r in rows if r[2].strip().split(".")[0] in HEAVY})
    print(f"heavy modules imported: {', '.join(heavy) if heavy else 'none'}")


def main() -> int:
    bytecode.ensure()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--reps", type=int, default=40, help="runs of each command (alternating)")
    parser.add_argument("--top", type=int, default=12, help="importtime rows to show")
    parser.add_argument("--dir", default="/tmp", help="where to make the temporary folder")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="fracta-bench-list-", dir=args.dir))
    try:
        root = make_repo(base, args.agents)
        env = clean_env()
        fracta_script = Path(sys.executable).parent / "fracta"
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -m fracta list": [sys.executable, "-m", "fracta", "list"],
            "fracta list": [str(fracta_script), "list"],
        }
        for argv in commands.values():  # warm the page cache and the bytecode caches
            wall(argv, root, env)
        times: dict[str, list[float]] = {label: [] for label in commands}
        for _ in range(args.reps):
            for label, argv in commands.items():
                times[label].append(wall(argv, root, env))
        base_median = statistics.median(times["python -c pass"])
        print(f"{args.agents} agents, {args.reps} runs each, interpreter {sys.executable}")
        print(f"{'command':<24} {'median ms':>10} {'min ms':>8} {'p90 ms':>8} {'ratio':>7}")
        missed = False
        for label, values in times.items():
            median = statistics.median(values)
            p90 = statistics.quantiles(values, n=10)[-1]
            ratio = median / base_median
            verdict = ""
            if label != "python -c pass":
                ok = ratio <= TARGET
                missed |= not ok
                verdict = f"  target <= {TARGET:g}x: {'met' if ok else 'MISSED'}"
            figures = f"{median * 1000:>10.1f} {min(values) * 1000:>8.1f} {p90 * 1000:>8.1f} {ratio:>6.2f}x"
            print(f"{label:<24} {figures}{verdict}")
        importtime(root, env, args.top)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
