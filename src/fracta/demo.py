"""The demo: fracta's main job on its embedded defaults, in a temporary repository.

Two `command` agents are spawned into their own worktrees; they set intents, message each
other and the chessmaster, and commit; the chessmaster peeks, reads its inbox and merges.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from . import agents, git, lifecycle, mailbox, merge, peek, progress, project
from . import repo as repo_mod
from .control import daemon

AGENT_SCRIPT = """\
import os, subprocess, sys
me, peer, filename, text = sys.argv[1:5]
fracta = [sys.executable, "-m", "fracta"]
subprocess.run(fracta + ["intent", me, f"writing {filename}"], check=True)
print(f"{me}: writing {filename}")
with open(filename, "w") as fh:
    fh.write(text + "\\n")
subprocess.run(["git", "add", filename], check=True)
subprocess.run(["git", "commit", "-q", "-m", f"{me}: add {filename}"], check=True)
# If the peer finished first, the note is kept as undeliverable and say warns (exit 0 all the same).
subprocess.run(fracta + ["say", peer, f"{filename} is committed on feature/{me}", "--from", me], check=True)
subprocess.run(fracta + ["say", "chessmaster", f"done: {filename}", "--from", me], check=True)
print(f"{me}: done")
"""


def make_repo(folder: Path) -> repo_mod.Repo:
    git.run(folder, "init", "-q", "-b", "main")
    git.run(folder, "config", "user.email", "demo@fracta.invalid")
    git.run(folder, "config", "user.name", "fracta demo")
    (folder / "README.md").write_text("# demo project\n")
    (folder / "agent.py").write_text(AGENT_SCRIPT)
    git.run(folder, "add", "README.md", "agent.py")
    git.run(folder, "commit", "-q", "-m", "initial commit")
    return repo_mod.find(folder, env={})


def _wait_done(r: repo_mod.Repo, names: list[str], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(agents.load(r, n).status in agents.FINISHED for n in names):
            return
        time.sleep(0.1)
    raise TimeoutError(f"demo agents did not finish within {timeout:g}s")


def steps(folder: Path) -> Iterator[tuple[str, str]]:
    """Run the demo in `folder`, yielding (what happened, what it looks like) as it goes."""
    # Nothing here needs fracta on PATH: the agents run `python -m fracta` with this interpreter,
    # and the post-commit hook names it too (tests/test_install.py runs the demo with no fracta on PATH).
    r = make_repo(folder)
    project.init(r)
    yield "fracta init", f".fracta/ created in {r.root}; post-commit hook installed"
    info, _ = daemon.up(r)
    yield "fracta up", f"control plane at {info.url} (pid {info.pid})"
    try:
        py = sys.executable
        plan = [("api", "docs", "api.py", "def login(): return 'token'"), ("docs", "api", "USAGE.md", "call login()")]
        for me, peer, filename, text in plan:
            lifecycle.spawn(
                r, lifecycle.SpawnRequest(name=me, runtime="command", args=(py, "agent.py", me, peer, filename, text))
            )
            yield f"fracta spawn {me} -- python agent.py ...", f"worktree .fracta/worktrees/{me} on feature/{me}"
        _wait_done(r, ["api", "docs"])
        listing = "\n".join(f"{a.name:6} {a.status.value:6} {a.branch}  {a.intent}" for a in agents.list_all(r)[0])
        yield "fracta list", listing
        yield "fracta peek api", "\n".join(e.text for e in peek.peek(r, "api").events)
        box = mailbox.read(r, "chessmaster")
        yield "fracta inbox chessmaster", "\n".join(f"{m.sender}: {m.body}" for m in box.messages)
        first = merge.merge(r, "api", notify=True, cwd=r.root)
        told = ", ".join(first.notified) or "no live agents"
        yield "fracta merge api --notify", f"main is now {first.sha[:10]}; told to run git merge main: {told}"
        merge.merge(r, "docs", cwd=r.root)
        yield "fracta merge docs", git.out(r.root, "log", "--oneline", "--graph", "-6")
        progress.refresh(r)
        yield "cat .fracta/progress.md", r.progress_path.read_text()
    finally:
        daemon.down(r)
        for a in agents.list_all(r)[0]:
            lifecycle.kill(r, a.name, force=True, grace=0.5)


def run(keep: bool) -> Iterator[tuple[str, str]]:
    if keep:
        yield from steps(Path(tempfile.mkdtemp(prefix="fracta-demo-")))
        return
    with tempfile.TemporaryDirectory(prefix="fracta-demo-") as tmp:
        yield from steps(Path(tmp))
