"""Spawn overhead: `fracta spawn` until the agent is `running`, against plain git + process start.

Baseline (same repo, same run): `git worktree add -b` + starting the same process.
Target: ratio <= 1.3. Run: .venv/bin/python bench/spawn_overhead.py [--files N] [--rounds R] [--spares N]

fracta runs as configured by default: the control plane keeps one spare checkout ready
(`workspaces.spares: 1`), so a spawn moves it into place instead of checking out every file.
The spare is made in the background after each spawn; every measurement (baseline and fracta
alike) starts only once it is ready, so that no background checkout shares the disk with
either side. `--spares 0` measures the spawn that checks out as the baseline does.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bytecode  # bench/bytecode.py, beside this script
import quiet  # bench/quiet.py, beside this script

BIN = Path(sys.executable).parent


def sh(cwd: Path, *args: str) -> str:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True).stdout


def make_repo(root: Path, files: int) -> None:
    sh(root, "git", "init", "-q", "-b", "main")
    sh(root, "git", "config", "user.email", "bench@fracta.invalid")
    sh(root, "git", "config", "user.name", "bench")
    for i in range(files):
        folder = root / f"pkg{i // 100}"
        folder.mkdir(exist_ok=True)
        (folder / f"mod{i}.py").write_text(f"VALUE = {i}\n" * 20)
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-q", "-m", "initial")


def baseline(root: Path, i: int) -> float:
    t0 = time.perf_counter()
    sh(root, "git", "worktree", "add", "-q", str(root.parent / f"plain{i}"), "-b", f"plain{i}")
    proc = subprocess.Popen(["sleep", "60"], cwd=root.parent / f"plain{i}", start_new_session=True)
    elapsed = time.perf_counter() - t0
    proc.kill()
    proc.wait()
    return elapsed


def fracta_spawn(root: Path, i: int) -> float:
    quiet.spawned()
    record = root / ".fracta" / "agents" / f"t{i}" / "agent.json"
    t0 = time.perf_counter()
    subprocess.run(
        [str(BIN / "fracta"), "spawn", f"t{i}", "--", "sleep", "60"], cwd=root, check=True, capture_output=True
    )
    while True:
        try:
            if json.loads(record.read_text())["status"] == "running":
                break
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        time.sleep(0.002)
    return time.perf_counter() - t0


def main() -> None:
    bytecode.ensure()
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=2000, help="tracked files in the test repo")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--spares", type=int, default=1, help="workspaces.spares (fracta's default: 1)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fracta-bench-spawn-", dir="/tmp") as tmp:
        root = Path(tmp) / "repo"
        root.mkdir()
        make_repo(root, args.files)
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
        subprocess.run([str(BIN / "fracta"), "init"], cwd=root, check=True, capture_output=True, env=env)
        cfg = root / "fracta.yaml"
        text = cfg.read_text().replace("max_agents: 4", "max_agents: 100")
        cfg.write_text(text.replace("spares: 1", f"spares: {args.spares}"))
        subprocess.run([str(BIN / "fracta"), "up"], cwd=root, check=True, capture_output=True)
        try:
            base, ours = [], []
            (root / ".fracta" / "worktrees").mkdir(exist_ok=True)
            for i in range(args.rounds):  # interleaved, so machine noise hits both alike
                quiet.settle(root)
                base.append(baseline(root, i))
                quiet.settle(root)
                ours.append(fracta_spawn(root, i))
        finally:
            for i in range(args.rounds):
                subprocess.run([str(BIN / "fracta"), "kill", f"t{i}", "--force"], cwd=root, capture_output=True)
            subprocess.run([str(BIN / "fracta"), "down"], cwd=root, capture_output=True)
        b, o = statistics.median(base), statistics.median(ours)
        print(f"repo: {args.files} tracked files on /tmp (disk); {args.rounds} rounds, medians; spares: {args.spares}")
        print(f"{'baseline: git worktree add + start process':48} {b * 1000:8.1f} ms")
        print(f"{'fracta spawn -> running':48} {o * 1000:8.1f} ms")
        print(f"{'overhead':48} {(o - b) * 1000:8.1f} ms")
        print(f"{'ratio (target <= 1.3)':48} {o / b:8.2f}x")


if __name__ == "__main__":
    main()
