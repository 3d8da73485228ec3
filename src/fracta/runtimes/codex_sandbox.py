"""What Codex's `workspace-write` sandbox lets an agent write: its worktree and what git needs to
commit and merge there, and nothing of the user's checkout or of other agents' worktrees.

Codex makes the working directory writable but keeps any `.git` inside a writable root read-only,
and for a linked worktree it follows the `.git` file and keeps that worktree's git folder
(`<common>/worktrees/<id>`) read-only too; `writable_roots` naming those folders explicitly win
over that carve-out. What `git add`, `git commit` and `git merge` write in a linked worktree, each
needed (taking any one away fails the commit):

  <common>/worktrees/<id>/           index, HEAD, ORIG_HEAD, MERGE_HEAD, COMMIT_EDITMSG, logs/HEAD
  <common>/objects/                  new objects
  <common>/refs/heads/feature/       the branch's ref, through refs/heads/feature/<name>.lock
  <common>/logs/refs/heads/feature/  the branch's reflog

A writable root must be a folder (a file makes Codex's bubblewrap set-up fail on every command),
and a root that does not exist is skipped, so the two ref folders are created when missing (`git
pack-refs` removes empty ones). See codex.py for what this leaves writable and what it does not.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from ..errors import ConfigError

TABLE = "sandbox_workspace_write"
TMP_DIR = "tmp"  # the agent's own TMPDIR, in its folder: Codex makes $TMPDIR writable, /tmp is not


# Keys of a user's config.toml that would replace fracta's sandbox: Codex 0.169 prefers a
# permission profile (`default_permissions` naming one of `[permissions.<name>]`) over
# sandbox_mode and sandbox_workspace_write, and the worktree's git folder is then read-only again.
USER_KEYS_LEFT_OUT = ("default_permissions", "permissions")


def user_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The user's config.toml without the keys that would replace fracta's sandbox."""
    return {k: v for k, v in config.items() if k not in USER_KEYS_LEFT_OUT}


def git_dirs(workspace: Path) -> tuple[Path, Path] | None:
    """(the worktree's own git folder, the repository's common git folder) for a linked worktree,
    read from its `.git` file; None for a folder that is not one."""
    try:
        text = (workspace / ".git").read_text(encoding="utf-8")
    except OSError:  # no .git, or a .git folder: a checkout of its own, not a linked worktree
        return None
    if not text.startswith("gitdir:"):
        return None
    gitdir = (workspace / text[len("gitdir:") :].strip()).resolve()
    try:
        common = (gitdir / (gitdir / "commondir").read_text(encoding="utf-8").strip()).resolve()
    except OSError:  # a submodule's .git file names a whole git folder: no common folder to share
        return None
    return gitdir, common


def git_roots(workspace: Path, branch: str | None) -> list[Path]:
    """The folders git writes to commit and merge in `workspace` on `branch`, created if missing."""
    dirs = git_dirs(workspace)
    if dirs is None:
        return []
    gitdir, common = dirs
    roots = [gitdir, common / "objects"]
    if branch and "/" in branch:  # never refs/heads itself: that would let it move main
        prefix = branch.rsplit("/", 1)[0]
        for folder in (common / "refs" / "heads" / prefix, common / "logs" / "refs" / "heads" / prefix):
            with contextlib.suppress(OSError):  # not ours to make: git will say what it cannot write
                folder.mkdir(parents=True, exist_ok=True)
            roots.append(folder)
    return roots


def agent_tmp(agent_dir: Path) -> Path:
    """The agent's TMPDIR (created): the one temporary folder its commands may write."""
    tmp = agent_dir / TMP_DIR
    tmp.mkdir(mode=0o700, exist_ok=True)
    return tmp


def defaults(roots: list[Path]) -> dict[str, Any]:
    """fracta's sandbox settings for config.toml."""
    return {
        "sandbox_mode": "workspace-write",
        # `bash -c`, not `bash -lc`: a login shell runs /etc/profile, which resets PATH (Debian)
        # and hides the git, python and fracta the agent was started with.
        "allow_login_shell": False,
        TABLE: {
            "writable_roots": [str(r) for r in roots],
            "exclude_slash_tmp": True,  # /tmp is shared: a checkout or worktree there would be writable
            "exclude_tmpdir_env_var": False,  # $TMPDIR is the agent's own folder
            "network_access": False,
        },
    }


def keep_roots(config: dict[str, Any], given: dict[str, dict[str, Any]], roots: list[Path]) -> dict[str, Any]:
    """`config` whose writable_roots are every root in `given` (where it was written -> the settings
    written there) plus `roots`: a list the user gives adds to fracta's, never replaces it."""
    table = config.get(TABLE)
    if table is None:
        return config
    if not isinstance(table, dict):
        raise ConfigError(f"Codex's {TABLE} must be a table, not {table!r}", "write it as {writable_roots: [...]}")
    wanted = [root for where, source in given.items() for root in _roots(where, source)]
    merged = list(dict.fromkeys([*wanted, *(str(r) for r in roots)]))
    return {**config, TABLE: {**table, "writable_roots": merged}}


def _roots(where: str, source: dict[str, Any]) -> list[str]:
    table = source.get(TABLE) or {}
    roots = table.get("writable_roots", []) if isinstance(table, dict) else []
    if not isinstance(roots, list) or not all(isinstance(r, str) for r in roots):
        raise ConfigError(
            f"{TABLE}.writable_roots in {where} must be a list of folders, not {roots!r}",
            "write it as a list of absolute paths, e.g. writable_roots: [/home/me/.cache/pip]",
        )
    return roots
