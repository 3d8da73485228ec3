"""The web view (`fracta ui`) with a fleet of 50 `command` agents, in headless Chromium.

Prints:
- event-to-screen latency, measured in the page: an event appended to the log (an agent's intent
  set: the record's `ts`) -> the page's fleet updated on screen (Date.now() after the swap),
  p50 and p99 over --events events, one at a time;
- the page's transfer size (the page, its script and stylesheet; a fleet fragment);
- the control plane's CPU (psutil) over --idle seconds with 5 browser views open and idle,
  against the baseline of the same control plane idle with no view, measured just before.
Run: .venv/bin/python bench/ui.py [--agents 50] [--events 100] [--idle 30]
Needs /usr/bin/chromium (scripts/setup-chromium) and playwright (the test extra).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bytecode  # bench/bytecode.py, beside this script
import psutil
from fleet import wait  # bench/fleet.py, beside this script
from playwright.sync_api import Page, sync_playwright

BIN = Path(sys.executable).parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
GIT_ENV = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@x"}


def fracta(root: Path, *args: str) -> str:
    done = subprocess.run([str(BIN / "fracta"), *args], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"fracta {' '.join(args)} failed: {done.stderr}")
    return done.stdout


def cpu(proc: psutil.Process, seconds: float) -> float:
    """CPU seconds `proc` (and its threads) used over `seconds` of wall time."""
    before = proc.cpu_times()
    time.sleep(seconds)
    after = proc.cpu_times()
    return (after.user - before.user) + (after.system - before.system)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def open_view(browser, root: Path) -> Page:  # type: ignore[no-untyped-def]
    page: Page = browser.new_context().new_page()
    page.goto(fracta(root, "ui", "--no-open").strip())
    page.wait_for_selector("#live[data-live=live]", timeout=60_000)
    return page


def setup(root: Path, agents: int) -> None:
    root.mkdir()
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "commit", "-q", "--allow-empty", "-m", "i"]):
        subprocess.run(cmd, cwd=root, check=True, capture_output=True, env={**os.environ, **GIT_ENV})
    fracta(root, "init")
    cfg = root / "fracta.yaml"
    cfg.write_text(cfg.read_text().replace("max_agents: 4", f"max_agents: {agents}"))
    fracta(root, "up")
    for i in range(agents):
        fracta(root, "spawn", f"agent-{i}", "--", "sh", "-c", "echo ready; sleep 3600")


def main() -> None:
    bytecode.ensure()
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--idle", type=float, default=30.0, help="seconds to measure idle CPU over")
    parser.add_argument("--views", type=int, default=5)
    args = parser.parse_args()
    from fracta import project
    from fracta import repo as repo_mod
    from fracta.control import daemon

    with tempfile.TemporaryDirectory(prefix="fracta-bench-ui-", dir="/tmp") as tmp:
        root = Path(tmp) / "repo"
        try:
            setup(root, args.agents)
            r = repo_mod.find(root, env={})
            info = daemon.read_info(r)
            assert info is not None
            control = psutil.Process(info.pid)
            time.sleep(3)  # the spawns' background work (spare worktrees, warm runner) settles
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                first = open_view(browser, root)
                wait("every agent on the page", lambda: len(first.query_selector_all("tr.agent")) == args.agents)
                sizes = first.evaluate(
                    "performance.getEntries().filter(e => e.encodedBodySize !== undefined && !e.name.includes("
                    "'/v1/events')).map(e => [e.name.split('?')[0].split('/').slice(3).join('/'), e.encodedBodySize])"
                )
                fragment = len(first.context.request.get(f"{info.url}/ui/fleet").body())

                latencies: list[float] = []
                for i in range(args.events):
                    name = f"agent-{i % args.agents}"
                    mark = f"step {i}"
                    before = first.evaluate("window.fractaTimings.length")
                    project.set_intent(r, name, mark)
                    first.wait_for_function(
                        "([n, m]) => (document.querySelector('#agent-' + n + ' .intent')?.textContent || '') === m",
                        arg=[name, mark],
                        timeout=60_000,
                    )
                    wait("the page's timing", lambda b=before: first.evaluate("window.fractaTimings.length") > b)
                    timings = first.evaluate("window.fractaTimings")
                    latencies += [t["latency"] for t in timings[before:] if t["event"] == "agent.intent"]
                first.context.close()
                time.sleep(2)

                baseline = cpu(control, args.idle)
                views = [open_view(browser, root) for _ in range(args.views)]
                time.sleep(2)  # their first loads done: from here they only listen
                with_views = cpu(control, args.idle)
                for view in views:
                    view.context.close()
                browser.close()
        finally:
            if root.exists():
                subprocess.run([str(BIN / "fracta"), "down"], cwd=root, capture_output=True)
                r2 = repo_mod.find(root, env={})
                from fracta import agents, processes

                for a in agents.list_all(r2)[0]:
                    if a.pid:
                        processes.terminate_group(a.pid, a.pid_start, 1.0)

    print(f"fleet: {args.agents} command agents; {len(latencies)} events, one at a time")
    print(
        f"event -> screen (in the page): p50 {statistics.median(latencies):.0f} ms, "
        f"p99 {percentile(latencies, 0.99):.0f} ms, max {max(latencies):.0f} ms"
    )
    total = sum(size for _, size in sizes)
    listing = ", ".join(f"{name or '/'} {size / 1024:.1f} KiB" for name, size in sizes)
    print(f"page transfer: {total / 1024:.1f} KiB ({listing}); a fleet fragment (an update): {fragment / 1024:.1f} KiB")
    share = 100 / args.idle
    print(
        f"control plane CPU over {args.idle:.0f} s: idle, no view {baseline:.2f} s ({share * baseline:.1f}%); "
        f"{args.views} idle views {with_views:.2f} s ({share * with_views:.1f}%); "
        f"the views add {100 * (with_views - baseline) / args.idle:.1f}% of a core"
    )


if __name__ == "__main__":
    main()
