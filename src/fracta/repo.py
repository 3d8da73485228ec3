"""The one object for "this repo's fracta": roots and paths, found once at the edge and passed down."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .errors import NotARepository, NotInitialized

if TYPE_CHECKING:
    from .config import Config
    from .store.base import Store


class ProgressSink(Protocol):
    def request(self, repo: Repo) -> None: ...


STATE_DIR = ".fracta"
CONFIG_FILE = "fracta.yaml"


@dataclass(frozen=True)
class Repo:
    """The main repository's root and its .fracta/ state folder, wherever the command ran from."""

    root: Path
    git_common_dir: Path | None  # None for a state folder outside any git repo (FRACTA_HOME)
    state: Path = field(default=Path())
    # Long-lived processes (the control plane, the gateway) coalesce progress.md regenerations
    # through a sink (progress.Coalescer); short-lived ones (the CLI) regenerate synchronously.
    progress_sink: ProgressSink | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.state == Path():
            object.__setattr__(self, "state", self.root / STATE_DIR)

    # Paths of the on-disk format (documented in .fracta.example/), computed once: they are on
    # every message's path.
    @functools.cached_property
    def agents_dir(self) -> Path:
        return self.state / "agents"

    @functools.cached_property
    def chessmaster_dir(self) -> Path:
        return self.state / "chessmaster"

    @functools.cached_property
    def worktrees_dir(self) -> Path:
        return self.state / "worktrees"

    @functools.cached_property
    def missions_dir(self) -> Path:
        return self.state / "missions"

    @functools.cached_property
    def logs_dir(self) -> Path:
        return self.state / "logs"

    @functools.cached_property
    def events_path(self) -> Path:
        return self.state / "events.jsonl"

    @functools.cached_property
    def progress_path(self) -> Path:
        return self.state / "progress.md"

    @functools.cached_property
    def control_path(self) -> Path:
        return self.state / "control.json"

    @functools.cached_property
    def token_path(self) -> Path:
        return self.state / "token"

    @functools.cached_property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILE

    @functools.cached_property
    def _per_name(self) -> dict[tuple[str, str], Path]:
        return {}

    @functools.cached_property
    def activity_touched(self) -> dict[str, float]:
        """When this process last touched each agent's activity file (agents.touch_activity)."""
        return {}

    @functools.cached_property
    def tmp_checked(self) -> dict[str, float]:
        """When this process last looked for orphans in each inbox's tmp/ (mailbox.read)."""
        return {}

    def _path(self, name: str, kind: str) -> Path:
        """agents/<name> and the files in it, joined once per name: a message's path uses several."""
        key = (name, kind)
        found = self._per_name.get(key)
        if found is None:
            from .names import CHESSMASTER

            if kind == "inbox" and name == CHESSMASTER:
                found = self.chessmaster_dir / "inbox"
            else:
                folder = self.agents_dir / name
                found = folder if kind == "" else folder / kind
            if len(self._per_name) < 4096:  # bounded: names come from requests
                self._per_name[key] = found
        return found

    def agent_dir(self, name: str) -> Path:
        return self._path(name, "")

    def inbox_dir(self, name: str) -> Path:
        return self._path(name, "inbox")

    def agent_file(self, name: str, file: str) -> Path:
        """agents/<name>/<file> (agent.json, activity, ...)."""
        return self._path(name, file)

    @property
    def initialized(self) -> bool:
        return self.agents_dir.is_dir()

    def require_initialized(self) -> Repo:
        if not self.initialized:
            raise NotInitialized(f"fracta is not initialized in {self.root}", "run: fracta init")
        return self

    @functools.cached_property
    def store(self) -> Store:
        """Where agents, messages, missions and events are kept (fracta.store): opened on first use."""
        from .store import open_store

        return open_store(self)

    @functools.cached_property
    def config(self) -> Config:
        from .config import load

        return load(self.config_path)


def find(start: Path | None = None, env: dict[str, str] | None = None) -> Repo:
    """Find the main repo from any folder of it or of its linked worktrees (or FRACTA_HOME)."""
    env = dict(os.environ) if env is None else env
    home = env.get("FRACTA_HOME")
    if home:
        state = Path(home).resolve()
        return Repo(root=state.parent, git_common_dir=_common_dir_or_none(state.parent), state=state)
    start = (start or Path.cwd()).resolve()
    if "GIT_DIR" not in env:
        found = _walk_up(start)
        if found is not None:
            return found
    return _ask_git(start)


def _walk_up(start: Path) -> Repo | None:
    """Resolve the common git dir by reading .git files ourselves: no subprocess on the fast path."""
    for folder in (start, *start.parents):
        dot_git = folder / ".git"
        if dot_git.is_dir():
            if (dot_git / "commondir").exists():
                return None  # unusual layout: let git decide
            return Repo(root=folder, git_common_dir=dot_git)
        if dot_git.is_file():
            try:
                line = dot_git.read_text().strip()
            except OSError:
                return None
            if not line.startswith("gitdir:"):
                return None
            gitdir = (folder / line[len("gitdir:") :].strip()).resolve()
            commondir_file = gitdir / "commondir"
            if not commondir_file.exists():
                return None  # a submodule or separate git dir: let git decide
            common = (gitdir / commondir_file.read_text().strip()).resolve()
            if common.name != ".git":
                return None
            return Repo(root=common.parent, git_common_dir=common)
    return None


def _ask_git(start: Path) -> Repo:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    import subprocess  # only when the .git files could not be read: off the fast path

    proc = subprocess.run(
        ["git", "rev-parse", "--path-format=absolute", "--git-common-dir", "--show-toplevel"],
        cwd=start,
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode != 0:
        raise NotARepository(
            f"{start} is not inside a git repository",
            "run fracta from your project's git repository (git init first if it has none), "
            "or set FRACTA_HOME to a .fracta folder",
        )
    common_s, *rest = proc.stdout.splitlines()
    common = Path(common_s)
    if common.name == ".git":
        return Repo(root=common.parent, git_common_dir=common)
    if rest:
        return Repo(root=Path(rest[0]), git_common_dir=common)
    raise NotARepository(f"{start} is in a bare repository", "run fracta from a repository with a work tree")


def _common_dir_or_none(root: Path) -> Path | None:
    dot_git = root / ".git"
    return dot_git if dot_git.is_dir() else None
