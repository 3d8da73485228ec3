"""Write docs/images/ui.png: the web view of a small fleet of command agents, one agent's panel open.

Run from the repository root: .venv/bin/python docs/ui_screenshot.py [--out docs/images/ui.png]
Needs /usr/bin/chromium (scripts/setup-chromium) and playwright (the test extra).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

BIN = Path(sys.executable).parent
ENV = {"GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "a@x", "GIT_COMMITTER_NAME": "Ada", "GIT_COMMITTER_EMAIL": "a@x"}
LOGIN = (
    "printf 'def login(user, password):\\n    return check(user, password)\\n' > login.py && "
    "git add login.py && git commit -qm 'add POST /login' && echo 'tests pass (12)' && "
    "fracta intent login-api 'POST /login with tests: done' && "
    "fracta say chessmaster 'done: POST /login with tests, ready to merge' && sleep 3600"
)
DOCS = "fracta intent docs 'rewriting the quick start'; while :; do echo 'writing docs/quickstart.md'; sleep 1; done"
FLAKY = "echo 'running the migration'; echo 'error: table users is locked' >&2; exit 3"


def fracta(root: Path, *args: str) -> None:
    subprocess.run([str(BIN / "fracta"), *args], cwd=root, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("docs/images/ui.png"))
    args = parser.parse_args()
    out = args.out.resolve()
    env = {**os.environ, **ENV, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    with tempfile.TemporaryDirectory(prefix="fracta-ui-shot-", dir="/tmp") as tmp:
        root = Path(tmp) / "shop"
        root.mkdir()
        for cmd in (["git", "init", "-q", "-b", "main"], ["git", "commit", "-q", "--allow-empty", "-m", "start"]):
            subprocess.run(cmd, cwd=root, check=True, env=env)
        os.environ.update(env)
        try:
            fracta(root, "init")
            fracta(root, "up")
            fracta(root, "spawn", "login-api", "--", "sh", "-c", LOGIN)
            fracta(root, "spawn", "docs", "--", "sh", "-c", DOCS)
            fracta(root, "spawn", "migrate", "--", "sh", "-c", FLAKY)
            fracta(root, "spawn", "lint", "--", "sh", "-c", "echo 'ruff: all checks passed'")
            time.sleep(3)
            fracta(root, "say", "login-api", "also cover the lockout case")
            url = subprocess.run(
                [str(BIN / "fracta"), "ui", "--no-open"], cwd=root, capture_output=True, text=True, check=True
            ).stdout.strip()
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path="/usr/bin/chromium",
                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
                )
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(url + "#login-api")
                page.wait_for_selector(".agent-detail[data-agent=login-api] pre.diff", timeout=60_000)
                page.wait_for_selector("#live[data-live=live]", timeout=60_000)
                page.wait_for_function("document.getElementById('peek').textContent.includes('tests pass')")
                out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(out), full_page=True)
                browser.close()
        finally:
            subprocess.run([str(BIN / "fracta"), "kill", "docs", "--force"], cwd=root, capture_output=True)
            subprocess.run([str(BIN / "fracta"), "kill", "login-api", "--force"], cwd=root, capture_output=True)
            subprocess.run([str(BIN / "fracta"), "down"], cwd=root, capture_output=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
