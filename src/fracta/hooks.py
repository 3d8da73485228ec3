"""The post-commit hook: installed once for every worktree, it turns each agent commit into news.

Where it goes. Git runs hooks from the common git dir (`git rev-parse --git-common-dir`/hooks)
in every linked worktree, so that is where the hook lives. With `core.hooksPath` set, git looks
only there: an absolute path (or `~/...`) is shared by every worktree, so the hook is installed
there when the folder is writable; if that folder is inside the main worktree, the files fracta
adds are listed in .git/info/exclude so the work tree stays clean, and a tracked post-commit there
is never touched (refused, with a hint). A relative path is resolved against each worktree's own
root, so a hook placed in the main worktree's copy never fires in an agent's worktree: refused,
with the command that makes the setting absolute.

Chaining. A post-commit hook that was there before fracta is renamed to post-commit.fracta-chained
and the fracta hook runs it first, with the same arguments, stdin and environment, and exits with
its status. Our own hook is recognised by MARKER, so reinstalling rewrites it in place and never
chains it to itself.

Calling fracta. The script runs `<python> -P -m fracta hook post-commit`, with the Python that
installed it (sys.executable at `fracta init` / `fracta hooks install`) written into it: an agent's
PATH often lacks fracta (Codex runs commands under `bash -lc`, and Debian's /etc/profile resets
PATH; a venv that was never activated). `-P` keeps the worktree's own folders off sys.path. If that
Python is gone, it falls back to `fracta` on PATH. The control plane rewrites the hook when it
names another Python than its own (`refresh`), and `fracta init` does too.

Timing. The script is plain POSIX sh. It skips the main worktree without starting Python unless
the committer is an agent (FRACTA_AGENT is set: an agent committing in the user's checkout is an
alert, see commits.py), and runs fracta with stdin from /dev/null and stdout discarded; that
command gives up after `--timeout` seconds (SIGALRM), so a stuck lock cannot hold a commit for
long. Whatever goes wrong, the hook exits with the chained hook's status (0 without one).

Failures are never silent. The command logs each failure to .fracta/logs/hooks.log and the
script prints one line on stderr; when fracta could not run at all, the script appends that line
to hooks.log itself. Where .fracta/ cannot be written (an agent's sandbox), the control plane's
watcher (commit_watch.py) records the commit instead: the hook is a fast path, not the only one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from traceback import format_exc
from types import FrameType
from typing import Any

from . import agents, atomic, commits, git, names
from . import repo as repo_mod
from .errors import FractaError, InvalidName, NotARepository, Refused

HOOK = "post-commit"
CHAINED = "post-commit.fracta-chained"
MARKER = "# fracta-managed-hook: post-commit"
DEFAULT_TIMEOUT = 10.0

_SCRIPT = r"""#!/bin/sh
{marker} (v2)
# Installed by `fracta hooks install`; reinstalling rewrites this file, so edit the chained hook.
# It tells fracta about each commit and never fails or blocks one.
status=0
chained="$(dirname -- "$0")/{chained}"
if [ -x "$chained" ] && [ "$chained" != "$0" ]; then
    "$chained" "$@"
    status=$?
fi
# Git runs hooks at the worktree's root: a .git folder there means the main worktree, where only
# an agent's commit (FRACTA_AGENT is set in its environment) concerns fracta.
if [ -d .git ] && [ -z "${{FRACTA_AGENT:-}}" ]; then
    exit "$status"
fi
python={python}
say() {{
    printf 'fracta post-commit hook failed (the commit is fine): %s\n' "$1" >&2
    common=$(git rev-parse --path-format=absolute --git-common-dir 2>/dev/null) || return 0
    logs="${{FRACTA_HOME:-${{common%/*}}/.fracta}}/logs"
    [ -d "$logs" ] || return 0
    text=$(printf '%s' "$1" | tr -d '\000-\037' | sed 's/\\/\\\\/g; s/"/\\"/g')
    who=$(printf '%s' "${{FRACTA_AGENT:-}}" | tr -cd 'a-z0-9-')
    fields='"level":"warning","component":"hooks","event":"hook.failed","message":"%s","agent":"%s","error":"%s"'
    printf "{{\"time\":\"%s\",$fields}}\n" \
        "$(date -u +%Y-%m-%dT%H:%M:%S.000Z)" "$text" "$who" "$text" >>"$logs/hooks.log" 2>/dev/null || true
}}
if [ -x "$python" ]; then
    set -- "$python" -P -m fracta
elif command -v fracta >/dev/null 2>&1; then
    set -- fracta
else
    say "fracta not found: $python is gone and no fracta is on PATH (run: fracta hooks install)"
    exit "$status"
fi
said=$(mktemp 2>/dev/null) || said=/dev/null
"$@" hook post-commit --timeout {timeout:g} </dev/null >/dev/null 2>"$said"
code=$?
line=
if [ "$said" != /dev/null ]; then
    while IFS= read -r text || [ -n "$text" ]; do line=$text; done <"$said"
    rm -f "$said"
fi
if [ "$code" -ne 0 ]; then
    say "${{line:-exit $code}}"
elif [ -n "$line" ]; then
    printf '%s\n' "$line" >&2
fi
exit "$status"
"""


def script(python: str | None = None) -> str:
    """The hook's text, calling fracta through `python` (default: this process's interpreter)."""
    return _SCRIPT.format(
        marker=MARKER, chained=CHAINED, python=_quote(python or sys.executable), timeout=DEFAULT_TIMEOUT
    )


def _quote(text: str) -> str:
    import shlex  # only when a hook is written: not on the hook's own path

    return shlex.quote(text)


# --- Installing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class InstallResult:
    hook: Path  # the fracta hook file
    action: str  # "installed", "updated" (an older fracta hook was rewritten) or "unchanged"
    chained: Path | None  # the earlier post-commit hook, kept and run first
    hooks_path: str | None  # core.hooksPath as configured, when set


def hooks_dir(repo: repo_mod.Repo) -> tuple[Path, str | None]:
    """The folder git reads hooks from in every worktree, and core.hooksPath when it is set."""
    if repo.git_common_dir is None:
        raise NotARepository(f"{repo.root} is not a git repository", "git hooks need a git repository")
    setting = git.run(repo.root, "config", "--type=path", "--get", "core.hooksPath", check=False).stdout.strip()
    if not setting:
        return repo.git_common_dir / "hooks", None
    folder = Path(setting)
    if not folder.is_absolute():
        raise Refused(
            f"core.hooksPath is the relative path {setting!r}: git resolves it in each worktree's own root, "
            "so a hook installed in the main worktree would never fire in an agent's worktree",
            f'make it absolute and rerun: git config core.hooksPath "{repo.root / setting}" && fracta hooks install',
        )
    return folder, setting


def install(repo: repo_mod.Repo, python: str | None = None) -> InstallResult:
    """Install (or refresh) the post-commit hook, keeping any earlier hook as a chained one.

    The hook calls fracta through `python` (default: this process's interpreter)."""
    text = script(python)
    folder, setting = hooks_dir(repo)
    assert repo.git_common_dir is not None  # hooks_dir checked it
    hook, chained = folder / HOOK, folder / CHAINED
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(f"{folder} is not writable")
        # Two installs at once must not chain each other's fresh hook: decide under a lock.
        with atomic.lock(repo.git_common_dir / "fracta-hooks.lock"):
            current = _read(hook)
            ours = current is not None and MARKER.encode() in current
            if MARKER.encode() in (_read(chained) or b""):
                chained.unlink()  # a copy of our own hook: chaining it would run fracta twice
            if os.path.lexists(hook) and not ours:
                _make_room(repo, hook, chained)
                os.rename(hook, chained)
            if current != text.encode():
                atomic.write_text(hook, text, mode=0o755)
            os.chmod(hook, 0o755)  # executable whatever the umask: git skips hooks that are not
            _exclude_if_in_worktree(repo, folder)
            action = "unchanged" if current == text.encode() else "updated" if ours else "installed"
            kept = chained if os.path.lexists(chained) else None
    except OSError as exc:
        raise Refused(
            f"cannot install the post-commit hook in {folder}: {exc.strerror or exc}",
            "make the folder writable, or point core.hooksPath at one that is, and rerun: fracta hooks install",
        ) from None
    return InstallResult(hook, action, kept, setting)


def refresh(repo: repo_mod.Repo) -> InstallResult | None:
    """Rewrite fracta's hook if it is installed but is not what this fracta would write (another
    Python, an older script); None when there was nothing to do. A foreign hook is left alone."""
    try:
        folder, _ = hooks_dir(repo)
    except (NotARepository, Refused):
        return None
    current = _read(folder / HOOK)
    if current is None or MARKER.encode() not in current or current == script().encode():
        return None
    return install(repo)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _make_room(repo: repo_mod.Repo, hook: Path, chained: Path) -> None:
    """Refuse to move a foreign hook aside when that would lose or change something."""
    if os.path.lexists(chained):
        raise Refused(
            f"{hook} is not fracta's hook, and {chained.name} (the hook fracta chains) already exists",
            f"combine them by hand into {chained}, remove {hook}, then rerun: fracta hooks install",
        )
    if _tracked(repo, hook):
        raise Refused(
            f"{hook} is tracked by git; fracta does not change tracked files",
            f"add this line to it: {_quote(sys.executable)} -P -m fracta hook {HOOK} </dev/null >/dev/null || true",
        )


def _in_main_worktree(repo: repo_mod.Repo, folder: Path) -> Path | None:
    """`folder` relative to the main worktree's root, if it is in the work tree (not in .git)."""
    try:
        rel = folder.resolve().relative_to(repo.root.resolve())
    except ValueError:
        return None
    return None if rel.parts[:1] == (".git",) else rel


def _tracked(repo: repo_mod.Repo, path: Path) -> bool:
    rel = _in_main_worktree(repo, path.parent)
    return rel is not None and bool(git.out(repo.root, "ls-files", "--", str(rel / path.name)))


def _exclude_if_in_worktree(repo: repo_mod.Repo, folder: Path) -> None:
    """Keep the work tree clean (merge refuses a dirty one) when core.hooksPath points into it."""
    rel = _in_main_worktree(repo, folder)
    if rel is None or repo.git_common_dir is None:
        return
    exclude = repo.git_common_dir / "info" / "exclude"
    current = exclude.read_text() if exclude.exists() else ""
    wanted = [f"/{(rel / n).as_posix()}" for n in (HOOK, CHAINED) if not _tracked(repo, folder / n)]
    missing = [line for line in wanted if line not in current.splitlines()]
    if missing:
        exclude.parent.mkdir(exist_ok=True)
        sep = "" if current == "" or current.endswith("\n") else "\n"
        atomic.write_text(
            exclude,
            current
            + sep
            + "# fracta's post-commit hook (fracta hooks install)\n"
            + "".join(f"{line}\n" for line in missing),
        )


# --- Running -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommitNotice:
    """What the hook did with one commit; agent is None when the commit was not an agent's."""

    commit: str
    branch: str | None
    subject: str
    agent: str | None = None
    notified: tuple[str, ...] = ()
    recorded: int = 0  # commits recorded on the agent's branch (earlier ones the hook missed, too)
    foreign: int = 0  # commits outside its branch, reported as alerts


def on_post_commit(repo: repo_mod.Repo, worktree_cwd: Path, env: Mapping[str, str] | None = None) -> CommitNotice:
    """Record the commit just made in `worktree_cwd` for its agent and tell who wants to know.

    In the agent's own worktree (or on its own branch) this is commits.check, the very pass the
    control plane's watcher runs, so whichever comes first records the commit. Anywhere else the
    commit is an alert that only the hook can raise: it alone knows the committer (FRACTA_AGENT).
    """
    env = os.environ if env is None else env
    lines = git.out(worktree_cwd, "rev-parse", "--show-toplevel", "HEAD", "--symbolic-full-name", "HEAD").splitlines()
    toplevel, sha, ref = Path(lines[0]).resolve(), lines[1], lines[2]  # ref is "HEAD" when detached
    branch = ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None
    short, _, subject = git.out(worktree_cwd, "log", "-1", "--format=%h%n%s", sha).partition("\n")
    subject = " ".join(subject.split())[: commits.MAX_SUBJECT]
    name = _committer(repo, toplevel, branch, env)
    if name is None:
        return CommitNotice(sha, branch, subject)
    agent = agents.load(repo, name)
    commit = commits.Commit(sha, short, subject)
    own = commits.own_branch(repo, agent)
    if toplevel == commits.own_worktree(repo, agent) or (own is not None and branch == own):
        noticed = commits.check(repo, name, by="hook")
    elif own is None and agent.workspace and Path(agent.workspace).resolve() == toplevel:
        noticed = commits.record_one(repo, name, commit, branch, by="hook")  # joined here, with no branch
    else:
        noticed = commits.report_foreign(repo, name, commit, branch, toplevel, by="hook")
    return CommitNotice(
        sha, branch, subject, name, noticed.notified, recorded=len(noticed.commits), foreign=len(noticed.foreign)
    )


def _committer(repo: repo_mod.Repo, toplevel: Path, branch: str | None, env: Mapping[str, str]) -> str | None:
    """The agent whose commit this is: FRACTA_AGENT, else its worktree folder, else its branch.

    In the main worktree only FRACTA_AGENT counts: without it, the commit is the user's own."""
    candidates = [env.get("FRACTA_AGENT", "")]
    if toplevel != repo.root.resolve():
        if toplevel.parent == repo.worktrees_dir.resolve():
            candidates.append(toplevel.name)
        if branch and branch.startswith("feature/"):
            candidates.append(branch.removeprefix("feature/"))
    for name in candidates:
        with contextlib.suppress(InvalidName):
            if name and names.validate(name) and agents.exists(repo, name):
                return name
    return None


def handle_post_commit(cwd: Path, env: Mapping[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT) -> str | None:
    """The hook's path: record the commit within `timeout` seconds. Returns one line describing
    a problem, or None; expected failures are logged, never raised, so a commit is never failed."""
    env = os.environ if env is None else env
    found: list[repo_mod.Repo] = []  # once found: where to log
    named: list[str] = []  # once known: the agent whose commit this is (its exit line names it)
    began = time.monotonic()
    how, code = "clean", 0
    try:
        return _post_commit(cwd, env, timeout, found, named)
    except Exception as exc:  # a bug: logged with its traceback, then the CLI reports it (exit code 1)
        how, code = "crash", 1
        _log(found[0] if found else None, "hook.crashed", None, f"the hook crashed: {exc!r}", traceback=format_exc())
        raise
    finally:
        ms = round((time.monotonic() - began) * 1000)
        where, who = (found[0] if found else None), (named[0] if named else None)
        _log(where, "hook.exited", who, "hook exited", exit_code=code, how=how, duration_ms=ms)


def _post_commit(
    cwd: Path, env: Mapping[str, str], timeout: float, found: list[repo_mod.Repo], named: list[str]
) -> str | None:
    repo: repo_mod.Repo | None = None
    try:
        with _deadline(timeout):
            repo = repo_mod.find(cwd, dict(env))
            if not repo.initialized:
                return None  # a repo (or a shared hooks folder) where fracta is not set up
            found.append(repo)
            notice = on_post_commit(repo, cwd, env)
    except (FractaError, OSError) as exc:
        message = exc.message if isinstance(exc, FractaError) else f"{type(exc).__name__}: {exc}"
        first = message.splitlines()[0] if message else type(exc).__name__
        _log(repo, "hook.failed", None, f"this commit was not recorded by the hook: {first}", error=message)
        return f"fracta: this commit was not recorded by the hook: {first} (the control plane records it when it runs)"
    if notice.agent is not None:
        named.append(notice.agent)
        _log(
            repo,
            "hook.recorded",
            notice.agent,
            f"recorded commit {notice.commit[:12]}",
            commit=notice.commit,
            recorded=notice.recorded,
            foreign=notice.foreign,
            notified=list(notice.notified),
        )
    return None


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Raise FractaError in this (main) thread if the block runs longer than `seconds`."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise FractaError(f"gave up after {seconds:g}s", "another fracta process may hold a lock under .fracta/")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _log(repo: repo_mod.Repo | None, event: str, agent: str | None, message: str, **data: Any) -> None:
    """One line in .fracta/logs/hooks.log (fracta.logs' fields, without the cost of a logging
    setup), appended whole so concurrent hooks never interleave, rotated as every log is; logging
    must never be what breaks the hook."""
    from . import logs

    if repo is None or not repo.logs_dir.is_dir():
        return
    level = "error" if event == "hook.crashed" else "warning" if event.endswith("failed") else "info"
    with contextlib.suppress(OSError, FractaError):
        logs.append(repo.logs_dir / "hooks.log", logs.line(level, "hooks", event, message, agent, **data))
