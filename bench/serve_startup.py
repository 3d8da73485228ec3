"""`fracta serve` cold start: a new process until it answers `initialize`, as an AI CLI launches it.

Measured with the control plane already running (the usual case: the AI CLI restarts, fracta
keeps running), against `python -c pass` in the same run (interleaved, so machine noise hits both
alike). Also shown: `fracta --version` (the CLI's own floor) and, for a few rounds, a start with
the control plane stopped, which `fracta serve` then starts itself.
Target: median <= 300 ms (exit 1 when missed).
Run: .venv/bin/python bench/serve_startup.py [--rounds R] [--cold-rounds C]
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

BIN = Path(sys.executable).parent
FRACTA = str(BIN / "fracta")
TARGET_MS = 300.0
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}},
}


def timed(args: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(args, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def serve_until_initialized(cwd: Path) -> float:
    """Spawn `fracta serve`, send initialize, stop the clock at the first line of its answer."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [FRACTA, "serve"], cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write((json.dumps(INITIALIZE) + "\n").encode())
    proc.stdin.flush()
    line = proc.stdout.readline()
    elapsed = time.perf_counter() - t0
    proc.stdin.close()
    proc.wait(timeout=30)
    reply = json.loads(line)
    assert reply["result"]["serverInfo"]["name"] == "fracta", reply
    return elapsed


def describe(label: str, samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    return f"  {label:34} median {statistics.median(ms):6.0f} ms   min {ms[0]:5.0f}   max {ms[-1]:5.0f}"


def main() -> int:
    bytecode.ensure()
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--cold-rounds", type=int, default=3, help="rounds with the control plane stopped")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fracta-bench-serve-", dir="/tmp") as tmp:
        root = Path(tmp) / "repo"
        root.mkdir()
        for cmd in (["git", "init", "-q", "-b", "main"], ["git", "commit", "-q", "--allow-empty", "-m", "init"]):
            env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b"}
            subprocess.run(cmd, cwd=root, check=True, env={**env, "GIT_COMMITTER_EMAIL": "b@x"})
        subprocess.run([FRACTA, "init"], cwd=root, check=True, capture_output=True)
        subprocess.run([FRACTA, "up"], cwd=root, check=True, capture_output=True)
        try:
            serve_until_initialized(root)  # warm the page cache once, as any earlier launch would
            base, version, serve = [], [], []
            for _ in range(args.rounds):
                base.append(timed([sys.executable, "-c", "pass"], root))
                version.append(timed([FRACTA, "--version"], root))
                serve.append(serve_until_initialized(root))
            cold = []
            for _ in range(args.cold_rounds):
                subprocess.run([FRACTA, "down"], cwd=root, check=True, capture_output=True)
                cold.append(serve_until_initialized(root))
        finally:
            subprocess.run([FRACTA, "down"], cwd=root, capture_output=True)
    median = statistics.median(serve) * 1000
    ratio = statistics.median(serve) / statistics.median(base)
    print(f"fracta serve: new process until `initialize` is answered ({args.rounds} rounds, {os.cpu_count()} cpus)")
    print(describe("python -c pass", base))
    print(describe("fracta --version (CLI floor)", version))
    print(describe("fracta serve, control plane up", serve))
    verdict = "met" if median <= TARGET_MS else "MISSED"
    print(f"  ratio to python -c pass: {ratio:.1f}x; target median <= {TARGET_MS:.0f} ms: {verdict}")
    if cold:
        print(describe("fracta serve, control plane down", cold) + "  (includes starting it)")
    return 0 if median <= TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
