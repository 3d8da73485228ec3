"""DirectoryWorkspace: a plain folder per agent, for Compose and Kubernetes.

A *managed* one is `<workspaces.root>/<task>` (workspaces.kind directory): fracta makes it at
spawn and removes it at `kill`, never while it holds work that exists nowhere else (see
`pending`), unless forced, and then it is moved aside first (`set_aside`). It has no branch of
fracta's, so `merge` is refused: the agent commits and pushes from its folder itself.

A folder the user names with `spawn --workspace DIR` (`create_directory`) is theirs: fracta
never deletes it.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .. import agents, git, names
from ..errors import AgentExists, InvalidInput, Refused
from ..repo import Repo
from .base import DIRECTORY, Workspace

ARCHIVE_DIR = ".archive"  # under the root: <root>/.archive/<task>/<UTC time> (task names never start with '.')


def root(repo: Repo) -> Path:
    """The folder managed workspaces are made in (`workspaces.root`; relative: to the repository)."""
    configured = Path(str(repo.config.get("workspaces.root"))).expanduser()
    return (configured if configured.is_absolute() else repo.root / configured).resolve()


def enabled(repo: Repo) -> bool:
    """Whether spawns get managed directory workspaces (`workspaces.kind: directory`)."""
    return bool(repo.config.get("workspaces.kind") == DIRECTORY)


def managed(repo: Repo, ws: Workspace) -> bool:
    """Whether `ws` is a folder fracta made under the root (and so removes), not a user's folder."""
    return ws.kind == DIRECTORY and enabled(repo) and ws.path.resolve().parent == root(repo)


def create(repo: Repo, name: str) -> Workspace:
    """Make the managed folder <root>/<name>; refused if something is there already (never reused:
    it may be an earlier agent's work)."""
    names.validate(name)
    folder = root(repo) / name
    if folder.exists() or folder.is_symlink():
        raise AgentExists(
            f"the workspace folder {folder} already exists",
            "choose another task name, or move that folder away (fracta never reuses or deletes it unasked)",
        )
    folder.mkdir(parents=True, exist_ok=False)
    return Workspace(kind=DIRECTORY, path=folder, branch=None, base=None)


def create_directory(repo: Repo, name: str, path: Path) -> Workspace:
    """Use folder `path` (created if missing) as a non-git workspace.

    The folder may already hold files: pointing an agent at an existing folder is the usual case,
    and fracta never deletes it. Refused: a path inside .fracta/ (fracta's own state, which it
    cleans up), a path that is a file, and a folder another live agent already works in.
    """
    names.validate(name)
    folder = path.expanduser().resolve()
    state = repo.state.resolve()
    if folder == state or state in folder.parents:
        raise Refused(
            f"the workspace {folder} is inside fracta's state folder {state}",
            "choose a folder outside .fracta/",
        )
    if folder.exists() and not folder.is_dir():
        raise InvalidInput(f"the workspace {folder} is a file, not a folder", "choose a folder")
    everyone, _ = agents.list_all(repo)
    for other in everyone:
        if other.live and other.workspace and Path(other.workspace).resolve() == folder:
            raise Refused(
                f"agent {other.name!r} already works in {folder}",
                "give each agent its own folder, so they do not overwrite each other's files",
            )
    folder.mkdir(parents=True, exist_ok=True)
    return Workspace(kind=DIRECTORY, path=folder, branch=None, base=None)


@dataclass(frozen=True)
class Pending:
    """What removing a managed folder would lose: commits on no remote-tracking branch and
    files not committed (a git repository), or every file in it (anything else)."""

    commits: int
    files: list[str]
    repository: bool  # the folder is a git repository of its own


def _is_repository(folder: Path) -> bool:
    if not (folder / ".git").exists():
        return False
    top = git.run(folder, "rev-parse", "--show-toplevel", check=False).stdout.strip()
    return bool(top) and Path(top).resolve() == folder.resolve()


def pending(ws: Workspace) -> Pending:
    """The work in `ws` that exists nowhere else (nothing if the folder is gone)."""
    folder = ws.path
    if not folder.is_dir():
        return Pending(0, [], repository=False)
    if not _is_repository(folder):
        found = [os.path.relpath(os.path.join(top, f), folder) for top, _, files in os.walk(folder) for f in files]
        return Pending(0, sorted(found), repository=False)
    from .git import status_paths

    dirty = status_paths(folder, untracked=True)
    tips = ["--branches"]
    if git.run(folder, "rev-parse", "--verify", "--quiet", "HEAD", check=False).returncode == 0:
        tips.insert(0, "HEAD")  # a detached HEAD's commits count too
    count = git.run(folder, "rev-list", "--count", *tips, "--not", "--remotes").stdout.strip()
    return Pending(int(count or 0), dirty, repository=True)


def head(ws: Workspace) -> str | None:
    """The commit checked out in the folder, if it is a git repository with one."""
    if not ws.path.is_dir() or not _is_repository(ws.path):
        return None
    return git.run(ws.path, "rev-parse", "--verify", "--quiet", "HEAD", check=False).stdout.strip() or None


def set_aside(repo: Repo, name: str, ws: Workspace) -> Path:
    """Move the managed folder to <root>/.archive/<name>/<UTC time>, whole; returns where."""
    _require_managed(repo, ws)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    shelf = root(repo) / ARCHIVE_DIR / name
    shelf.mkdir(parents=True, exist_ok=True)
    for n in range(100):
        target = shelf / (stamp + (f"-{n}" if n else ""))
        try:
            target.mkdir()  # taken first, so two kills in one second never share it
        except FileExistsError:
            continue
        target.rmdir()
        shutil.move(str(ws.path), str(target))  # a rename on the same volume
        return target
    raise Refused(f"could not find a free archive folder for {name} in {shelf}", f"see {shelf}")


def remove(repo: Repo, ws: Workspace) -> None:
    """Delete a managed folder; callers set its unsaved work aside first. Gone already is fine."""
    _require_managed(repo, ws)
    if ws.path.is_symlink():
        ws.path.unlink()
    elif ws.path.exists():
        shutil.rmtree(ws.path)


def _require_managed(repo: Repo, ws: Workspace) -> None:
    if not managed(repo, ws):
        raise Refused(
            f"{ws.path} is not a folder fracta made under {root(repo)}; fracta will not remove it",
            "remove it yourself, if you mean to",
        )
