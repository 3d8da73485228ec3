"""Agent workspaces, by kind (`workspaces.kind`):

- git (git.py): a worktree at .fracta/worktrees/<name> on branch feature/<name>; `merge` works;
- directory (directory.py): a folder per agent at <workspaces.root>/<name> that fracta makes and,
  on `kill`, removes (Compose and Kubernetes); or a folder the user names with `--workspace`,
  which fracta never deletes.
"""

from __future__ import annotations

from ..repo import Repo
from . import directory
from .base import BRANCH_PREFIX, DIRECTORY, GIT, Workspace, branch_for, from_agent
from .directory import create_directory
from .git import (
    Registered,
    create_git,
    resolve_commit,
    status_paths,
    worktree_path,
    worktree_paths,
    worktrees,
)
from .git import remove as _remove_git

__all__ = [
    "BRANCH_PREFIX",
    "DIRECTORY",
    "GIT",
    "Registered",
    "Workspace",
    "branch_for",
    "create_directory",
    "create_git",
    "from_agent",
    "remove",
    "resolve_commit",
    "status_paths",
    "worktree_path",
    "worktree_paths",
    "worktrees",
]


def remove(repo: Repo, ws: Workspace) -> None:
    """Remove a workspace fracta made: a git worktree and its branch, or a managed folder.
    Callers save unsaved work first. A folder the user named (`--workspace`) is left as it is."""
    if ws.kind == GIT:
        _remove_git(repo, ws)
    elif directory.managed(repo, ws):
        directory.remove(repo, ws)
