"""graph_query and graph_upsert through the gateway, against the same Cypher sent straight to FalkorDB.

Run: .venv/bin/python bench/graph.py [--calls 300] [--dir /tmp]

A real control plane (`fracta up`) with its embedded FalkorDB in a temporary repository. One
agent's MCP session (official client, streamable HTTP) calls each tool `--calls` times after a
warm-up; the baseline sends the very Cypher the tool runs (the same parameters, GRAPH.RO_QUERY or
GRAPH.QUERY) with the falkordb client on the same unix socket, in the same run. The graph holds
2,000 File nodes touched by 20 agents; the query reads one agent's files (100 rows), the upsert
writes 10 nodes and 10 relationships. Every write is fsync'd (appendfsync always) on both sides.
Target: the gateway's p50 at most 2x the direct p50.

The floor: in the same session, the cheapest gateway tool call (`fracta_list`, one agent), so
that each graph tool is also shown as overhead above what any MCP call through the gateway costs.
And a no-op strategy (`strategy_run noop`: one step, no data) for the strategy runner's overhead:
gateway -> runner (unix socket) -> load (cached) -> run -> back.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bytecode  # bench/bytecode.py, beside this script

BIN = Path(sys.executable).parent
WARMUP = 20
TARGET = 2.0
QUERY = "MATCH (a:Agent {key: $agent})-[:TOUCHES]->(f:File) RETURN f.key AS file, f.lines AS lines ORDER BY file"


NOOP = """
from fracta.strategies import Strategy

strategy = Strategy("noop", "Does nothing.")


@strategy.step
async def nothing(ctx):
    return None
"""


def fracta(root: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run([str(BIN / "fracta"), *args], cwd=root, check=True, capture_output=True, text=True, env=env)
    return done.stdout


def batch(i: int) -> dict[str, Any]:
    nodes = [{"label": "File", "key": f"src/m{i % 50}/f{j}.py", "properties": {"lines": i + j}} for j in range(10)]
    agent = {"label": "Agent", "key": f"agent-{i % 20}"}
    rels = [{"type": "TOUCHES", "from": agent, "to": {"label": "File", "key": n["key"]}} for n in nodes]
    return {"nodes": nodes, "relationships": rels}


def cpu(*pids: int) -> float:
    """Seconds of CPU the processes used so far (user + system, /proc/PID/stat)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextlib.contextmanager
def bare_mcp(tmp: Path) -> Iterator[tuple[str, int]]:
    """The second baseline: bench/mcp_bare.py (the MCP SDK alone, one empty tool) on a free port."""
    port_file = tmp / "bare.port"
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("mcp_bare.py")), str(port_file)])
    try:
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, "the bare MCP server did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port_file.read_text()}/mcp", proc.pid
    finally:
        proc.terminate()
        proc.wait()


def query_args(i: int) -> dict[str, Any]:
    return {"query": QUERY, "params": {"agent": f"agent-{i % 20}"}, "limit": 1000}


def through_gateway(url: str, token: str, bare_url: str, calls: int, pids: dict[str, int]) -> dict[str, list[float]]:
    """Per tool, each call's wall time; then under "cpu:<tool>", in a block of `calls` calls each,
    the CPU a call of the serving processes and of this client (wall times on a busy machine
    mostly measure the scheduler; CPU does not)."""
    import anyio
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async def run() -> dict[str, list[float]]:
        out: dict[str, list[float]] = {
            "graph_query": [],
            "graph_upsert": [],
            "floor": [],
            "strategy_run": [],
            "bare": [],
        }
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
            streamable_http_client(url, http_client=http) as (read, write),
            ClientSession(read, write) as session,
            httpx2.AsyncClient() as bare_http,
            streamable_http_client(bare_url, http_client=bare_http) as (bare_read, bare_write),
            ClientSession(bare_read, bare_write) as bare,
        ):
            await session.initialize()
            await bare.initialize()
            for i in range(200):  # the graph: 2,000 files, 20 agents
                await session.call_tool("graph_upsert", batch(i))
            for i in range(WARMUP + calls):
                for key, tool, args in (
                    ("bare", "noop", {}),
                    ("floor", "fracta_list", {}),
                    ("graph_query", "graph_query", query_args(i)),
                    ("graph_upsert", "graph_upsert", batch(i)),
                    ("strategy_run", "strategy_run", {"name": "noop", "params": {}}),
                ):
                    start = time.perf_counter()
                    result = await (bare if key == "bare" else session).call_tool(tool, args)
                    took = time.perf_counter() - start
                    assert not result.is_error, result.content
                    if i >= WARMUP:
                        out[key].append(took)
            blocks = (
                ("bare", bare, "noop", lambda i: {}, (pids["bare"],)),
                ("graph_query", session, "graph_query", query_args, (pids["gateway"], pids["graph"])),
                ("graph_upsert", session, "graph_upsert", batch, (pids["gateway"], pids["graph"])),
            )
            for key, where, tool, args_of, serving in blocks:
                served, mine = cpu(*serving), time.process_time()
                for i in range(calls):
                    await where.call_tool(tool, args_of(i))
                out[f"cpu:{key}"] = [(cpu(*serving) - served) / calls, (time.process_time() - mine) / calls]
        return out

    result: dict[str, list[float]] = anyio.run(run)
    return result


def direct(socket: Path, calls: int, graph_pid: int) -> dict[str, list[float]]:
    """The same Cypher the tools run, straight to FalkorDB (ops.upsert's query, captured once);
    then, as through_gateway does, the CPU a call in a block of `calls` (the server's, this one's)."""
    import falkordb

    from fracta.graph import ops
    from fracta.graph.client import Graph
    from fracta.graph.settings import GraphSettings

    captured: list[tuple[str, dict[str, Any]]] = []

    class Capture(Graph):
        def write(self, cypher: str, params: dict[str, Any] | None = None) -> Any:
            captured.append((cypher, params or {}))
            return super().write(cypher, params)

    spy = Capture(GraphSettings(name="fracta", timeout=10.0), socket)
    spy.indexed.update({"File", "Agent"})
    g = falkordb.FalkorDB(unix_socket_path=str(socket)).select_graph("fracta")
    out: dict[str, list[float]] = {"graph_query": [], "graph_upsert": []}
    writes: list[tuple[str, dict[str, Any]]] = []
    for i in range(WARMUP + calls):
        start = time.perf_counter()
        g.ro_query(QUERY, {"agent": f"agent-{i % 20}"}, timeout=10000)
        took = time.perf_counter() - start
        if i >= WARMUP:
            out["graph_query"].append(took)
        b = batch(i)
        nodes = [ops.Node(n["label"], n["key"], n["properties"]) for n in b["nodes"]]
        rels = [
            ops.Relationship("TOUCHES", ops.NodeRef("Agent", r["from"]["key"]), ops.NodeRef("File", r["to"]["key"]))
            for r in b["relationships"]
        ]
        captured.clear()
        ops.upsert(spy, nodes, rels, by="bench")  # writes once to capture the Cypher; the timed write repeats it
        cypher, params = captured[-1]
        start = time.perf_counter()
        g.query(cypher, params, timeout=10000)
        took = time.perf_counter() - start
        if i >= WARMUP:
            out["graph_upsert"].append(took)
        writes.append((cypher, params))
    served, mine = cpu(graph_pid), time.process_time()
    for i in range(calls):
        g.ro_query(QUERY, {"agent": f"agent-{i % 20}"}, timeout=10000)
    out["cpu:graph_query"] = [(cpu(graph_pid) - served) / calls, (time.process_time() - mine) / calls]
    served, mine = cpu(graph_pid), time.process_time()
    for cypher, params in writes[-calls:]:
        g.query(cypher, params, timeout=10000)
    out["cpu:graph_upsert"] = [(cpu(graph_pid) - served) / calls, (time.process_time() - mine) / calls]
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--dir", default="/tmp")
    args = parser.parse_args()
    bytecode.ensure()
    with tempfile.TemporaryDirectory(prefix="fracta-bench-graph-", dir=args.dir) as tmp:
        root = Path(tmp) / "repo"
        root.mkdir()
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
        fracta(root, "init")
        (root / "strategies").mkdir()
        (root / "strategies" / "noop.py").write_text(NOOP)
        fracta(root, "join", "bench")
        fracta(root, "up")
        try:
            from fracta import project
            from fracta import repo as repo_mod
            from fracta.control import daemon
            from fracta.graph import server

            r = repo_mod.find(root, env={})
            info = daemon.read_info(r)
            running = server.running(r)
            assert info is not None and info.gateway_url is not None and running is not None
            with bare_mcp(Path(tmp)) as (bare_url, bare_pid):
                pids = {"bare": bare_pid, "gateway": info.pid, "graph": running.pid}
                gw = through_gateway(info.gateway_url, project.agent_token(r, "bench"), bare_url, args.calls, pids)
            raw = direct(running.socket, args.calls, running.pid)
        finally:
            fracta(root, "down")
    missed = False
    b50, b99 = pct(gw["bare"], 0.5) * 1e3, pct(gw["bare"], 0.99) * 1e3
    f50, f99 = pct(gw["floor"], 0.5) * 1e3, pct(gw["floor"], 0.99) * 1e3
    print(f"{args.calls} calls each after {WARMUP} warm-up; ms (p50 / p99); ratio = gateway p50 / direct p50")
    print(f"{'bare MCP':13s} server  {b50:6.2f} / {b99:6.2f}   (an empty tool on the MCP SDK alone: its floor)")
    print(f"{'floor':13s} gateway {f50:6.2f} / {f99:6.2f}   (fracta_list: the cheapest MCP call through the gateway)")
    for tool in ("graph_query", "graph_upsert"):
        g50, g99 = pct(gw[tool], 0.5) * 1e3, pct(gw[tool], 0.99) * 1e3
        d50, d99 = pct(raw[tool], 0.5) * 1e3, pct(raw[tool], 0.99) * 1e3
        ratio = g50 / d50
        missed |= ratio > TARGET
        print(
            f"{tool:13s} gateway {g50:6.2f} / {g99:6.2f}   direct {d50:6.2f} / {d99:6.2f}   "
            f"ratio p50 {ratio:4.2f}x  p99 {g99 / d99:4.2f}x  (mean {statistics.mean(gw[tool]) * 1e3:.2f})"
        )
        print(
            f"{'':13s} bare MCP + direct {b50 + d50:6.2f} (the least any gateway on this SDK could take: "
            f"{(b50 + d50) / d50:4.2f}x direct); fracta's own: {g50 - b50 - d50:+6.2f} ms"
        )
    bare_cpu = sum(gw["cpu:bare"]) * 1e3
    print(f"CPU a call, ms (the serving processes + the client; {args.calls} calls in a block):")
    server, client = gw["cpu:bare"]
    print(f"{'bare MCP':13s} {bare_cpu:6.2f}   (server {server * 1e3:.2f} + client {client * 1e3:.2f})")
    for tool in ("graph_query", "graph_upsert"):
        (gs, gc), (ds, dc) = gw[f"cpu:{tool}"], raw[f"cpu:{tool}"]
        print(
            f"{tool:13s} gateway {(gs + gc) * 1e3:6.2f} (gateway + graph {gs * 1e3:.2f}, client {gc * 1e3:.2f})   "
            f"direct {(ds + dc) * 1e3:6.2f} (graph {ds * 1e3:.2f}, client {dc * 1e3:.2f})   "
            f"ratio {(gs + gc) / (ds + dc):4.2f}x; above bare MCP + direct: {(gs + gc - ds - dc) * 1e3 - bare_cpu:+.2f}"
        )
    s50, s99 = pct(gw["strategy_run"], 0.5) * 1e3, pct(gw["strategy_run"], 0.99) * 1e3
    print(f"{'strategy_run':13s} gateway {s50:6.2f} / {s99:6.2f}   no-op strategy: {s50 - b50:+6.2f} ms above bare MCP")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
