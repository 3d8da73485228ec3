"""fracta_send round trip over HTTP MCP: p50 and p99, one client alone and 8 clients at once.

Run: .venv/bin/python bench/gateway_send.py [--sends 500] [--clients 8] [--per-client 200] [--dir /tmp]

A real control plane (`fracta up`) in a temporary repository under /tmp (a real disk: every send
is fsynced before it returns). Each client is its own process with the official MCP client
(streamable HTTP + ClientSession) and its own agent token; a round trip is one `call_tool
("fracta_send")` from request to parsed result, after a warm-up. Target: p50 <= 10 ms. For
comparison, the peer mcp_agent_mail publishes a 118.6 ms mean for its send_message.
The same run first times the core send alone (fracta.mailbox.send in-process, same repo and disk),
so the difference is what HTTP + MCP add; with --dir /dev/shm (fsync is nearly free there) the disk
drops out of both.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bytecode  # bench/bytecode.py, beside this script

BIN = Path(sys.executable).parent
BODY = "Please rebase on main: the login endpoint moved to /api/v2/login, tests updated."
WARMUP = 20
TARGET_P50 = 0.010
PEER_MEAN = 0.1186


def fracta(root: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run([str(BIN / "fracta"), *args], cwd=root, check=True, capture_output=True, text=True, env=env)
    return done.stdout


def client(url: str, token: str, sender: str, to: str, count: int, barrier: Any) -> list[float]:
    """One MCP session: warm up, wait for the others, then time `count` fracta_send calls."""
    import anyio
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async def run() -> list[float]:
        timings: list[float] = []
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
            streamable_http_client(url, http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            args = {"from": sender, "to": to, "message": BODY}
            for i in range(WARMUP + count):
                if i == WARMUP and barrier is not None:
                    barrier.wait()
                start = time.perf_counter()
                result = await session.call_tool("fracta_send", args)
                elapsed = time.perf_counter() - start
                if result.is_error:
                    raise RuntimeError(str(result.content))
                if i >= WARMUP:
                    timings.append(elapsed)
        return timings

    return anyio.run(run)


def core(root: Path, count: int) -> list[float]:
    """The same send without HTTP or MCP: the core function the tool calls."""
    from fracta import mailbox
    from fracta import repo as repo_mod

    repo = repo_mod.find(root, env={})
    timings = []
    for i in range(WARMUP + count):
        start = time.perf_counter()
        mailbox.send(repo, "agent0", "agent1", BODY)
        if i >= WARMUP:
            timings.append(time.perf_counter() - start)
    return timings


def _worker(job: tuple[str, str, str, str, int, Any]) -> list[float]:
    return client(*job)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(title: str, timings: list[float], wall: float) -> None:
    p50, p99, mean = quantile(timings, 0.50), quantile(timings, 0.99), statistics.fmean(timings)
    print(
        f"{title:34} n={len(timings):5}  p50 {p50 * 1000:6.2f} ms  p99 {p99 * 1000:6.2f} ms  "
        f"mean {mean * 1000:6.2f} ms  {len(timings) / wall:7.0f} sends/s"
    )


def main() -> None:
    bytecode.ensure()
    parser = argparse.ArgumentParser()
    parser.add_argument("--sends", type=int, default=500, help="timed sends of the lone client")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--per-client", type=int, default=200, help="timed sends of each concurrent client")
    parser.add_argument("--dir", default="/tmp", help="where the temporary repository lives")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fracta-bench-gateway-", dir=args.dir) as tmp:
        root = Path(tmp) / "repo"
        root.mkdir()
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
        fracta(root, "init")
        names = [f"agent{i}" for i in range(max(args.clients, 2))]
        for name in names:
            fracta(root, "join", name)
        fracta(root, "up")
        try:
            url = json.loads((root / ".fracta" / "control.json").read_text())["gateway_url"]
            token = {n: (root / ".fracta" / "agents" / n / "token").read_text().strip() for n in names}
            print(f"gateway {url}, repo in {args.dir}; every send is fsynced before it returns; {WARMUP} warm-up calls")

            start = time.perf_counter()
            baseline = core(root, args.sends)
            report("core mailbox.send, no HTTP/MCP", baseline, time.perf_counter() - start)
            start = time.perf_counter()
            alone = client(url, token["agent0"], "agent0", "agent1", args.sends, None)
            report("sequential, 1 client", alone, time.perf_counter() - start)

            barrier = mp.Manager().Barrier(args.clients)
            jobs = [
                (url, token[n], n, names[(i + 1) % len(names)], args.per_client, barrier)
                for i, n in enumerate(names[: args.clients])
            ]
            with mp.get_context("fork").Pool(args.clients) as pool:
                start = time.perf_counter()
                together = [t for timings in pool.map(_worker, jobs) for t in timings]
                wall = time.perf_counter() - start
            report(f"concurrent, {args.clients} clients", together, wall)
            p50 = quantile(alone, 0.5)
            print(f"HTTP + MCP add {(p50 - quantile(baseline, 0.5)) * 1000:.2f} ms to the core send at p50")
            print(f"target p50 <= {TARGET_P50 * 1000:.0f} ms (sequential): {'met' if p50 <= TARGET_P50 else 'MISSED'}")
            print(f"peer mcp_agent_mail send_message mean: {PEER_MEAN * 1000:.1f} ms")
        finally:
            fracta(root, "down")


if __name__ == "__main__":
    main()
