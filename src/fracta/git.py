"""git, wrapped once: every call raises GitError with the command, return code and output."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from .errors import GitError


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment without inherited GIT_* variables (set when we run inside a git hook)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") or k in _KEEP}
    env.update(extra or {})
    return env


# Test and user configuration that must survive the scrub.
_KEEP = frozenset({"GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM", "GIT_CONFIG_SYSTEM"})


def run(
    cwd: Path,
    *args: str,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    hint: str = "",
    nice: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run `git ARGS` in `cwd`; raise GitError on failure unless check=False.

    `nice`: at the lowest CPU priority, for work done ahead of time in the background.
    """
    cmd = ["git", *args]
    try:
        with subprocess.Popen(
            cmd,
            cwd=cwd,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(env),
        ) as child:
            if nice:
                with contextlib.suppress(OSError):  # it may have finished already
                    os.setpriority(os.PRIO_PROCESS, child.pid, 19)
            stdout, stderr = child.communicate(input)
        proc = subprocess.CompletedProcess(cmd, child.returncode, stdout, stderr)
    except FileNotFoundError:
        raise GitError(cmd, 127, "", "git is not installed or not on PATH", hint="install git 2.38 or newer") from None
    if check and proc.returncode != 0:
        raise GitError(cmd, proc.returncode, proc.stdout, proc.stderr, hint=hint)
    return proc


def out(cwd: Path, *args: str, check: bool = True, env: Mapping[str, str] | None = None, hint: str = "") -> str:
    """stdout of `git ARGS`, stripped."""
    return run(cwd, *args, check=check, env=env, hint=hint).stdout.strip()


def ok(cwd: Path, *args: str) -> bool:
    """True when `git ARGS` exits 0."""
    return run(cwd, *args, check=False).returncode == 0


def current_branch(cwd: Path) -> str | None:
    """The checked-out branch, or None on a detached HEAD."""
    proc = run(cwd, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    return proc.stdout.strip() or None


def head(cwd: Path) -> str:
    return out(cwd, "rev-parse", "HEAD")


def is_dirty(cwd: Path) -> bool:
    """Uncommitted changes to tracked files, or untracked files that are not ignored."""
    return bool(out(cwd, "status", "--porcelain", "--untracked-files=normal"))


def uncommitted(cwd: Path) -> list[str]:
    """Tracked files with uncommitted changes (staged or not); [] when git cannot tell.

    For a warning only, so a failure says nothing rather than failing the command.
    """
    proc = run(cwd, "--no-optional-locks", "status", "--porcelain", "--untracked-files=no", check=False)
    return [line[3:] for line in proc.stdout.splitlines() if len(line) > 3] if proc.returncode == 0 else []


def branch_exists(cwd: Path, branch: str) -> bool:
    return ok(cwd, "show-ref", "--verify", "--quiet", f"refs/heads/{branch}")


def resolve(cwd: Path, *names: str) -> list[str | None]:
    """The object each name resolves to (e.g. `HEAD^{commit}`, `refs/heads/x`), or None: one git call.

    A name that could be read as something else (an option, or more than one line) resolves to None.
    """
    usable = [n for n in names if n and not n.startswith("-") and n.isprintable() and " " not in n]
    found: dict[str, str] = {}
    if usable:
        listing = run(
            cwd, "cat-file", "--batch-check=%(objectname) %(rest)", input="".join(f"{n} {n}\n" for n in usable)
        )
        for line in listing.stdout.splitlines():
            sha, _, name = line.partition(" ")
            if not line.endswith(" missing") and not line.endswith(" ambiguous"):
                found[name] = sha
    return [found.get(n) for n in names]
