"""Time to the first fracta tool call: `fracta spawn --runtime R` against running the same CLI by hand.

Both sides talk to the same scripted model (tests/scripted_model) and the same gateway, and make
the same first call, `fracta_set_intent`; the clock stops when the gateway has recorded it (the
agent's `agent.intent` event in .fracta/events.jsonl). By hand: the CLI run directly with an
MCP config holding a joined agent's token, as tests/ai_clis.py builds it. With fracta: the
`fracta spawn` command (its worktree, the mission queue, the runner, the adapter's config files)
with the control plane already up. Rounds alternate the two sides.

Needs the AI CLIs from scripts/setup-ai-clis. Target: ratio <= 1.2.
Run: .venv/bin/python bench/runtime_first_call.py [--rounds 11] [--runtimes claude,codex,opencode]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import bytecode  # noqa: E402 - bench/bytecode.py, beside this script
import quiet  # noqa: E402 - bench/quiet.py, beside this script
from ai_clis import (  # noqa: E402 - the test helpers live beside the tests
    McpServer,
    claude_by_hand,
    codex_by_hand,
    isolated_env,
    opencode_by_hand,
    runtime_options,
)
from scripted_model import ScriptedModel, call, say  # noqa: E402

BIN = Path(sys.executable).parent
TARGET = 1.2
TASK = "Set your intent, then stop."


def sh(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True, env=env).stdout


class Events:
    """Follows .fracta/events.jsonl for `agent.intent` events."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0
        self.seen: set[str] = set()

    def wait_intent(self, agent: str, timeout: float = 120.0) -> float:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
            complete = data[: data.rfind(b"\n") + 1]
            self.offset += len(complete)
            for line in complete.splitlines():
                event = json.loads(line)
                if event.get("event") == "agent.intent":
                    self.seen.add(str(event.get("agent")))
            if agent in self.seen:
                return time.perf_counter()
            time.sleep(0.002)
        raise SystemExit(f"gave up waiting for {agent}'s first tool call")


def by_hand(runtime: str, name: str, root: Path, model: ScriptedModel, events: Events, env: dict[str, str]) -> float:
    joined = json.loads(sh(root, str(BIN / "fracta"), "join", name, "--json", env=env))
    token = joined["env"]["FRACTA_TOKEN"]
    gateway = McpServer("fracta", url=joined["env"]["FRACTA_GATEWAY_URL"], headers={"Authorization": f"Bearer {token}"})
    agent = model.agent(name)
    run_dir = root.parent / "by-hand" / name
    home = {"HOME": env["HOME"]}  # the same HOME as the spawned agents: the CLI's own state is as warm
    if runtime == "claude":
        tools = [f"mcp__fracta__{t}" for t in ("fracta_set_intent", "fracta_inbox", "fracta_send")]
        inv = claude_by_hand(agent, TASK, root, run_dir, [gateway], allowed_tools=tools, env=home)
    elif runtime == "codex":
        inv = codex_by_hand(agent, TASK, root, run_dir, [gateway], env=home)
    else:
        inv = opencode_by_hand(agent, TASK, root, run_dir, [gateway], env=home)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        inv.argv,
        env=inv.env,
        cwd=inv.cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    elapsed = events.wait_intent(name) - t0
    proc.wait(timeout=120)
    return elapsed


def with_fracta(runtime: str, name: str, root: Path, events: Events, env: dict[str, str]) -> float:
    quiet.spawned()
    t0 = time.perf_counter()
    sh(root, str(BIN / "fracta"), "spawn", name, "--runtime", runtime, "--prompt", TASK, env=env)
    elapsed = events.wait_intent(name) - t0
    record = root / ".fracta" / "agents" / name / "agent.json"
    while json.loads(record.read_text())["status"] not in {"idle", "done", "failed"}:
        time.sleep(0.02)
    return elapsed


def main() -> int:
    bytecode.ensure()
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=11)  # Claude alone varies by 0.1 s between runs
    parser.add_argument("--runtimes", default="claude,codex,opencode")
    args = parser.parse_args()
    chosen = args.runtimes.split(",")
    work = Path(tempfile.mkdtemp(prefix="fracta-bench-first-call-"))
    root = work / "repo"
    root.mkdir()
    env = {**isolated_env(work / "env"), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env = {k: v for k, v in env.items() if not k.startswith("FRACTA_")}
    missed = False
    with ScriptedModel() as model:
        try:
            sh(root, "git", "init", "-q", "-b", "main", env=env)
            sh(
                root,
                "git",
                "-c",
                "user.email=b@fracta.invalid",
                "-c",
                "user.name=b",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                "init",
                env=env,
            )
            sh(root, str(BIN / "fracta"), "init", env=env)
            config = root / "fracta.yaml"
            table = json.dumps({r: runtime_options(r, model) for r in chosen})
            text = config.read_text().replace("max_agents: 4", "max_agents: 1000")  # joined agents count as running
            config.write_text(text.replace("agent_runtimes: {}", f"agent_runtimes: {table}"))
            sh(root, str(BIN / "fracta"), "up", env=env)
            events = Events(root / ".fracta" / "events.jsonl")
            print(
                f"{'runtime':10} {'by hand (s)':>12} {'fracta (s)':>11} {'ratio':>6}  (medians, {args.rounds} rounds)"
            )
            for runtime in chosen:
                hand: list[float] = []
                ours: list[float] = []
                for i in range(args.rounds + 1):  # round 0 warms the CLI's caches and is dropped
                    for side in ("hand", "fracta") if i % 2 else ("fracta", "hand"):
                        name = f"{runtime}-{side}-{i}"
                        model.agent(name, [call("fracta_set_intent", name=name, intent="bench"), say("done")])
                        quiet.settle(root)  # both sides start with fracta idle
                        if side == "hand":
                            took = by_hand(runtime, name, root, model, events, env)
                        else:
                            took = with_fracta(runtime, name, root, events, env)
                        if i:
                            (hand if side == "hand" else ours).append(took)
                h, f = statistics.median(hand), statistics.median(ours)
                ratio = f / h
                missed |= ratio > TARGET
                print(f"{runtime:10} {h:12.3f} {f:11.3f} {ratio:6.2f}{'' if ratio <= TARGET else '  MISSED'}")
        finally:
            subprocess.run([str(BIN / "fracta"), "down"], cwd=root, env=env, capture_output=True)
            shutil.rmtree(work, ignore_errors=True)
    print(f"target: ratio <= {TARGET}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
