"""The demo: fracta's main job on its embedded defaults, in a temporary repository."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from . import agents, mailbox, progress, project
from . import repo as repo_mod


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def make_repo(folder: Path) -> repo_mod.Repo:
    _git(folder, "init", "-q", "-b", "main")
    _git(folder, "config", "user.email", "demo@fracta.invalid")
    _git(folder, "config", "user.name", "fracta demo")
    (folder / "README.md").write_text("# demo project\n")
    _git(folder, "add", "README.md")
    _git(folder, "commit", "-q", "-m", "initial commit")
    return repo_mod.find(folder, env={})


def steps(folder: Path) -> Iterator[tuple[str, str]]:
    """Run the demo in `folder`, yielding (what happened, what it looks like) as it goes."""
    r = make_repo(folder)
    project.init(r)
    yield "fracta init", f".fracta/ created in {r.root}"
    for name, intent in (("api", "design the REST endpoints"), ("ui", "sketch the login page")):
        joined = project.join(r, name, intent=intent)
        yield f"fracta join {name}", "\n".join(f"export {k}=..." for k in joined.env)
    project.set_intent(r, "ui", "build the login form against api's endpoints")
    yield "fracta intent ui ...", agents.load(r, "ui").intent
    mailbox.send(r, "api", "ui", "POST /login is ready on feature/api; token in the JSON body")
    mailbox.send(r, "chessmaster", "*", "stand-up in 10 minutes: set your intents")
    yield "api -> ui, chessmaster -> *", "two messages delivered (ui has 2 unread, api has 1)"
    box = mailbox.read(r, "ui")
    yield "fracta inbox ui", "\n".join(f"{m.sender}: {m.body}" for m in box.messages)
    progress.refresh(r)
    yield "cat .fracta/progress.md", r.progress_path.read_text()


def run(keep: bool) -> Iterator[tuple[str, str]]:
    if keep:
        yield from steps(Path(tempfile.mkdtemp(prefix="fracta-demo-")))
        return
    with tempfile.TemporaryDirectory(prefix="fracta-demo-") as tmp:
        yield from steps(Path(tmp))
