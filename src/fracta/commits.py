"""Commit recording: every agent commit is noticed once, whether the hook or the control plane sees it first.

Two callers, one function. The post-commit hook (hooks.py) is the fast path: it runs in the
agent's own `git commit`. But an agent's sandbox may hide fracta or forbid writes to .fracta/, so
the control plane also watches git itself (commit_watch.py: the ref files and reflogs of the
common git dir, at start and on every reaper sweep). Both call `check(repo, name)`, which compares
what git holds with what was last recorded for the agent (agents/<name>/commits.json) and records
the difference, under the agent record's lock: whichever comes first records a commit, the other
finds nothing new.

What is an agent's commit. Its own branch is the record's `branch` (feature/<name> for a spawned
agent; for a joined one, feature/<name> if that branch exists). New commits are those reachable
from its tip and neither from the tip recorded last (`branch_tip`; before that, `last_commit` or
the `base` it was spawned from) nor from any other branch, tag or remote-tracking ref: merging
main brings in main's commits, which are not the agent's; its merge commit is.

Recording a commit: `last_commit` in the record (progress.md, `fracta list`), one `agent.commit`
event per commit, and one message from the agent to the chessmaster (unless hooks.notify_chessmaster
is off) and to the agents subscribed to it (hooks.subscribers). A burst of commits seen in one
pass is one message listing them, oldest first (at most MAX_LISTED lines): one notice per pass
keeps an inbox readable when an agent commits ten times in a second.

Commits outside the agent's own branch are alerts: a message to the chessmaster with subject
ALERT_SUBJECT, an `agent.commit.foreign` event and a line under "## Alerts" in progress.md,
naming the agent, the branch (or a detached HEAD) and the commit. They are found two ways:
- in the agent's own worktree, from its HEAD reflog (<common>/worktrees/<id>/logs/HEAD): an entry
  that made a commit (commit, merge, cherry-pick, revert...) whose commit is not on the agent's
  branch. Both callers read it from the mark recorded last (`head_log`), so each is reported once.
  While a rebase is under way its picks are left for later: they usually end on the branch.
- anywhere else (the user's checkout, another worktree), only by the hook, which knows the
  committer from FRACTA_AGENT in the agent's environment. Git records no author process, so when
  the hook cannot run there, that commit cannot be told from the user's own: the control plane
  says nothing about main moving (the chessmaster commits there too). One exception: an agent
  joined in the main checkout with no branch of its own works there, so its commits there are
  its work (`record_one`), not alerts.

Exactly once, with one caveat: notices go out under the lock before the mark is written, so a
process killed in between (or a hook that hits its timeout there) leaves the commit to be
recorded again: at least once, never lost.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import agents, alerts, atomic, events, git, mailbox, names, progress
from .errors import AgentNotFound, ConfigError, CorruptRecord, FractaError, InvalidName
from .repo import Repo

log = logging.getLogger("fracta.commits")
STATE_FILE = "commits.json"
MAX_LISTED = 20
MAX_SUBJECT = 200
ALERT_SUBJECT = "ALERT: commit outside its branch"
# Seconds a commit just made while HEAD names the agent's branch is given for git to move that
# branch (its HEAD reflog entry comes first) before it may count as made outside the branch.
SETTLE = 5.0
# Reflog entries that make a commit (git's own wording); others only move HEAD.
_MAKES_COMMIT = ("commit", "merge ", "pull", "cherry-pick", "revert", "rebase", "am")
_MOVES_ONLY = ("Fast-forward", "rebase (start)", "rebase (finish)", "rebase -i (start)", "rebase -i (finish)")


@dataclass(frozen=True)
class Commit:
    sha: str
    short: str
    subject: str


@dataclass(frozen=True)
class Foreign:
    """A commit an agent made outside its own branch: on `branch` (None: a detached HEAD) in `place`."""

    commit: Commit
    branch: str | None
    place: Path


@dataclass(frozen=True)
class Noticed:
    """What one check recorded for an agent."""

    agent: str
    branch: str | None
    commits: tuple[Commit, ...] = ()
    foreign: tuple[Foreign, ...] = ()
    notified: tuple[str, ...] = ()


@dataclass(frozen=True)
class Seen:
    """agents/<name>/commits.json: where recording stopped last time."""

    branch_tip: str | None = None  # the tip of the agent's branch when last checked
    head_log: str | None = None  # "<old> <new> <time>" of the last HEAD reflog entry read

    @classmethod
    def read(cls, repo: Repo, name: str) -> Seen:
        try:
            data = atomic.read_json(repo.agent_file(name, STATE_FILE))
        except (FileNotFoundError, CorruptRecord):  # none yet, or damaged: start from the record
            return cls()
        return cls(_text(data.get("branch_tip")), _text(data.get("head_log")))

    def write(self, repo: Repo, name: str) -> None:
        atomic.write_json(repo.agent_file(name, STATE_FILE), {"schema": 1, **dataclasses.asdict(self)})


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# --- Where an agent works ------------------------------------------------------------------------


def own_branch(repo: Repo, agent: agents.Agent, tips: Mapping[str, str] | None = None) -> str | None:
    """The branch the agent's commits belong on: its record's, else feature/<name> if that exists."""
    if agent.branch:
        return agent.branch
    guess = f"feature/{agent.name}"
    if tips is not None:
        return guess if f"refs/heads/{guess}" in tips else None
    return guess if git.branch_exists(repo.root, guess) else None


def own_worktree(repo: Repo, agent: agents.Agent) -> Path | None:
    """The agent's linked worktree (never the main one, whose HEAD moves with the user's work)."""
    for candidate in (agent.workspace, str(repo.worktrees_dir / agent.name)):
        if candidate and os.path.isfile(os.path.join(candidate, ".git")):
            return Path(candidate).resolve()
    return None


def admin_dir(worktree: Path) -> Path | None:
    """The worktree's folder in the common git dir (<common>/worktrees/<id>), from its .git file."""
    try:
        line = (worktree / ".git").read_text().strip()
    except OSError:
        return None
    if not line.startswith("gitdir:"):
        return None
    return (worktree / line[len("gitdir:") :].strip()).resolve()


def branch_tips(repo: Repo) -> dict[str, str]:
    """Every local branch's tip, by full ref name: one git call."""
    listing = git.out(repo.root, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/")
    return dict(line.split(" ", 1) for line in listing.splitlines() if " " in line)


# --- Checking ------------------------------------------------------------------------------------


def check(repo: Repo, name: str, *, by: str, tips: Mapping[str, str] | None = None) -> Noticed:
    """Record the agent's commits that are not recorded yet (see the module's doc); `by` says who looked."""
    noticed: list[Noticed] = []

    def record(current: agents.Agent) -> agents.Agent | None:
        found = _scan(repo, current, Seen.read(repo, name), tips)
        if found is None:
            return None
        result, seen = found
        told = _announce(repo, result, by) if result.commits else ()
        if result.foreign:
            _alarm(repo, name, result.branch, result.foreign, by)
        noticed.append(dataclasses.replace(result, notified=told))
        seen.write(repo, name)
        if not result.commits:
            return None
        last = result.commits[-1]
        return dataclasses.replace(current, last_commit=last.sha, last_commit_subject=last.subject)

    agents.modify(repo, name, record)
    if noticed and (noticed[0].commits or noticed[0].foreign):
        progress.refresh(repo)  # after the record changed (the messages' own refreshes came before)
    return noticed[0] if noticed else Noticed(name, None)


def _scan(repo: Repo, agent: agents.Agent, seen: Seen, tips: Mapping[str, str] | None) -> tuple[Noticed, Seen] | None:
    """What is new since `seen`, and the marks to write; None when nothing changed at all."""
    branch = own_branch(repo, agent, tips)
    # Read afresh under the lock: a tip listed before it was taken may be older than the one
    # recorded meanwhile, and recording it would move the mark back.
    tip = git.resolve(repo.root, f"refs/heads/{branch}")[0] if branch is not None else None
    new: list[Commit] = []
    if tip is not None and branch is not None and tip != seen.branch_tip:
        new = _new_commits(repo, branch, tip, seen.branch_tip or agent.last_commit or agent.base)
    foreign, mark = _foreign(repo, agent, branch, tip, seen.head_log, {c.sha for c in new})
    after = Seen(tip or seen.branch_tip, mark)
    if after == seen and not new and not foreign:
        return None
    return Noticed(agent.name, branch, tuple(new), tuple(foreign)), after


def _new_commits(repo: Repo, branch: str, tip: str, boundary: str | None) -> list[Commit]:
    """Commits on `branch` up to `tip`, past `boundary`, on no other ref; oldest first."""
    stop = git.resolve(repo.root, f"{boundary}^{{commit}}")[0] if boundary else None  # gone after a gc: None
    args = ["log", "--reverse", "--format=%H%x09%h%x09%s", tip, "--not"]
    if stop:
        args.append(stop)
    args += [f"--exclude={branch}", "--branches", "--tags", "--remotes", "--"]
    return _parse_log(git.out(repo.root, *args))


def _parse_log(text: str) -> list[Commit]:
    found = []
    for line in text.splitlines():
        sha, short, subject = [*line.split("\t", 2), "", ""][:3]
        found.append(Commit(sha, short, " ".join(subject.split())[:MAX_SUBJECT]))
    return found


def _foreign(
    repo: Repo, agent: agents.Agent, branch: str | None, tip: str | None, mark: str | None, own: set[str]
) -> tuple[list[Foreign], str | None]:
    """Commits made in the agent's worktree off its branch, from its HEAD reflog past `mark`."""
    worktree = own_worktree(repo, agent)
    admin = admin_dir(worktree) if worktree is not None else None
    if worktree is None or admin is None or branch is None:
        return [], mark
    if (admin / "rebase-merge").exists() or (admin / "rebase-apply").exists():
        return [], mark  # picks land on the branch when the rebase ends: look then
    try:
        entries = (admin / "logs" / "HEAD").read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return [], mark
    parsed = [e for e in (_entry(line) for line in entries) if e is not None]
    fresh = _after(parsed, mark)
    if not fresh:
        return [], mark
    made = [new for _, new, _, message in fresh if _makes_commit(message)]
    candidates = list(dict.fromkeys(s for s in made if s not in own and s != tip))
    off = _off_branch(repo, candidates, tip)
    if off:
        # git appends a commit's HEAD reflog entry before it moves the branch, and may append
        # HEAD's entry before the branch's own: a commit in the branch's reflog was made on the
        # branch (it may since have been reset away), and one just made while HEAD names the
        # branch is looked at again on the next pass, once the ref has moved.
        on_branch = _logged_on(repo, branch)
        off = [s for s in off if s not in on_branch]
        newest = max((int(e[2]) for e in fresh if e[1] in off and e[2].isdigit()), default=0)
        if off and _head_names(admin, branch) and time.time() - newest < SETTLE:
            return [], mark
    found = [Foreign(c, _holder(repo, c.sha), worktree) for c in _describe(repo, off)]
    last = fresh[-1]
    return found, f"{last[0]} {last[1]} {last[2]}"


def _logged_on(repo: Repo, branch: str) -> set[str]:
    """The commits `branch`'s own reflog shows it pointing at."""
    if repo.git_common_dir is None:
        return set()
    try:
        lines = (repo.git_common_dir / "logs" / "refs" / "heads" / branch).read_text(errors="replace").splitlines()
    except (FileNotFoundError, NotADirectoryError):
        return set()
    return {e[1] for e in (_entry(line) for line in lines) if e is not None}


def _head_names(admin: Path, branch: str) -> bool:
    """Whether the worktree's HEAD is the symbolic ref to `branch`."""
    try:
        return (admin / "HEAD").read_text().strip() == f"ref: refs/heads/{branch}"
    except OSError:
        return False


def _entry(line: str) -> tuple[str, str, str, str] | None:
    """(old, new, time, message) of one reflog line: `<old> <new> <name> <email> <time> <tz>\t<message>`."""
    head, _, message = line.partition("\t")
    words = head.split()
    if len(words) < 4:
        return None
    return words[0], words[1], words[-2], message


def _after(parsed: list[tuple[str, str, str, str]], mark: str | None) -> list[tuple[str, str, str, str]]:
    """The entries after the one `mark` names; if it is gone (reflog expired), those newer than it."""
    if mark is None:
        return parsed
    for index in range(len(parsed) - 1, -1, -1):
        old, new, when, _ = parsed[index]
        if f"{old} {new} {when}" == mark:
            return parsed[index + 1 :]
    since = mark.rsplit(" ", 1)[-1]
    return [e for e in parsed if e[2].isdigit() and since.isdigit() and int(e[2]) > int(since)]


def _makes_commit(message: str) -> bool:
    return message.startswith(_MAKES_COMMIT) and not any(m in message for m in _MOVES_ONLY)


def _off_branch(repo: Repo, candidates: list[str], tip: str | None) -> list[str]:
    """The candidates not reachable from `tip` (one git call), keeping their order."""
    if not candidates:
        return []
    present = [
        s
        for s, ok in zip(candidates, git.resolve(repo.root, *(f"{s}^{{commit}}" for s in candidates)), strict=True)
        if ok
    ]
    if not present or tip is None:
        return present
    outside = set(git.out(repo.root, "rev-list", *present, "--not", tip, "--").split())
    return [s for s in present if s in outside]


def _describe(repo: Repo, shas: list[str]) -> list[Commit]:
    if not shas:
        return []
    return _parse_log(git.out(repo.root, "log", "--no-walk=unsorted", "--format=%H%x09%h%x09%s", *shas, "--"))


def _holder(repo: Repo, sha: str) -> str | None:
    """A branch holding `sha`, preferring one whose tip it is; None when none does (a detached HEAD)."""
    listing = git.out(
        repo.root, "for-each-ref", "--contains", sha, "--format=%(objectname) %(refname:short)", "refs/heads/"
    )
    holders = [line.split(" ", 1) for line in listing.splitlines() if " " in line]
    for top, name in holders:
        if top == sha:
            return name
    return holders[0][1] if holders else None


# --- Telling -------------------------------------------------------------------------------------


def _announce(repo: Repo, noticed: Noticed, by: str) -> tuple[str, ...]:
    """The notice of the agent's new commits on its branch, to the chessmaster and its subscribers."""
    name, commits = noticed.agent, noticed.commits
    branch = noticed.branch or "its branch"
    if len(commits) == 1:
        body = f"{name} committed {commits[0].short} on {branch}: {commits[0].subject}"
    else:
        listed = [f"  {c.short} {c.subject}" for c in commits[:MAX_LISTED]]
        if len(commits) > MAX_LISTED:
            listed.append(f"  ... and {len(commits) - MAX_LISTED} more: git log {branch}")
        body = f"{name} committed {len(commits)} commits on {branch}:\n" + "\n".join(listed)
    told = _audience(repo, name)
    for target in told:
        mailbox.send(repo, name, target, body)
    for c in commits:
        events.record(repo, "agent.commit", agent=name, commit=c.sha, branch=noticed.branch, notified=told, by=by)
    if by != "hook":
        extra = {"event": "commits.caught_up", "agent": name, "commits": [c.sha for c in commits]}
        log.info("recorded commits the hook had not", extra=extra)
    return tuple(told)


def _alarm(repo: Repo, name: str, own: str | None, found: tuple[Foreign, ...] | list[Foreign], by: str) -> None:
    """Tell the chessmaster, loudly, of commits the agent made outside its own branch."""
    lines = [
        f"{name} committed {f.commit.short} on {f.branch or 'a detached HEAD'} in {_place(repo, f.place)}, "
        f"not on its own branch{f' {own}' if own else ''}: {f.commit.subject}"
        for f in found
    ]
    body = "\n".join(["ALERT: " + line for line in lines[:MAX_LISTED]])
    if len(lines) > MAX_LISTED:
        body += f"\n... and {len(lines) - MAX_LISTED} more (see .fracta/events.jsonl)"
    mailbox.send(repo, name, names.CHESSMASTER, body, subject=ALERT_SUBJECT)
    for f in found:
        events.record(
            repo, "agent.commit.foreign", agent=name, commit=f.commit.sha, branch=f.branch, own_branch=own,
            place=str(f.place), by=by,
        )  # fmt: skip
    alerts.add(repo, lines)
    extra = {"event": "commits.foreign", "agent": name, "commits": [f.commit.sha for f in found]}
    log.warning("agent committed outside its branch", extra=extra)


def _place(repo: Repo, place: Path) -> str:
    with contextlib.suppress(OSError):
        if place.resolve() == repo.root.resolve():
            return f"the main checkout ({place})"
    return str(place)


def record_one(repo: Repo, name: str, commit: Commit, branch: str | None, *, by: str) -> Noticed:
    """Record one commit made in the agent's workspace when it has no branch of its own (an agent
    joined in the main checkout): only the hook sees those, once each."""
    result = Noticed(name, branch, (commit,))
    told = _announce(repo, result, by)
    agents.update(repo, name, last_commit=commit.sha, last_commit_subject=commit.subject)
    progress.refresh(repo)
    return dataclasses.replace(result, notified=told)


def report_foreign(repo: Repo, name: str, commit: Commit, branch: str | None, place: Path, *, by: str) -> Noticed:
    """Alert on one commit the agent made outside its own worktree (the hook's case: see the module doc)."""
    agent = agents.load(repo, name)
    own = own_branch(repo, agent)
    found = (Foreign(commit, branch, place),)
    _alarm(repo, name, own, found, by)
    progress.refresh(repo)
    return Noticed(name, own, foreign=found, notified=(names.CHESSMASTER,))


def _audience(repo: Repo, committer: str) -> list[str]:
    """The chessmaster (unless hooks.notify_chessmaster is off) and the agents subscribed to `committer`."""
    cfg = repo.config
    out = [names.CHESSMASTER] if _flag(cfg.resolved("hooks.notify_chessmaster"), cfg.path.name) else []
    subscribers = cfg.resolved("hooks.subscribers") or {}
    if not isinstance(subscribers, Mapping):
        raise ConfigError(
            f"hooks.subscribers in {cfg.path.name} must map an agent to the agents it follows",
            "e.g. subscribers: {web: [api]}, or {web: ['*']} to follow everyone",
        )
    for listener, followed in subscribers.items():
        watched = [followed] if isinstance(followed, str) else followed
        if not isinstance(watched, list):
            raise ConfigError(f"hooks.subscribers.{listener} in {cfg.path.name} must be a list of agent names")
        wants = committer in watched or "*" in watched
        # A listener that was removed since the config was written is skipped, not an error.
        if wants and listener != committer and listener not in out and _known(repo, str(listener)):
            out.append(str(listener))
    return out


def _known(repo: Repo, name: str) -> bool:
    with contextlib.suppress(InvalidName):
        return name == names.CHESSMASTER or (names.validate(name) == name and agents.exists(repo, name))
    return False


def _flag(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "yes", "on", "1"}:
        return True
    if text in {"false", "no", "off", "0", ""}:
        return False
    raise ConfigError(f"hooks.notify_chessmaster in {where} must be true or false, not {value!r}")


# --- Every agent at once (the control plane's pass) -----------------------------------------------


def check_all(repo: Repo, *, by: str = "watcher", stats: dict[str, tuple[int, int]] | None = None) -> list[Noticed]:
    """Check every agent whose branch tip or worktree reflog changed since it was last recorded.

    `stats` (kept by the caller between passes) remembers each reflog's size and mtime, so an
    unchanged agent costs a stat and a small read; a failure for one agent never stops the others.
    """
    if repo.git_common_dir is None or not repo.initialized:
        return []
    tips = branch_tips(repo)
    found: list[Noticed] = []
    everyone, _ = agents.list_all(repo)
    for agent in everyone:
        try:
            if not _changed(repo, agent, tips, stats):
                continue
            noticed = check(repo, agent.name, by=by, tips=tips)
        except (AgentNotFound, FileNotFoundError):
            continue  # removed while we looked
        except (FractaError, OSError) as exc:
            if stats is not None:
                stats.pop(agent.name, None)  # look again at the next pass
            extra = {"event": "commits.agent_check_failed", "agent": agent.name, "error": str(exc)}
            log.warning("could not check an agent's commits", extra=extra)
            continue
        if stats is not None and _settling(repo, agent):
            stats.pop(agent.name, None)  # a commit left to settle: look again at the next pass
        if noticed.commits or noticed.foreign:
            found.append(noticed)
    return found


def _settling(repo: Repo, agent: agents.Agent) -> bool:
    """Whether the agent's HEAD reflog holds entries past the mark (left for git to move the branch)."""
    worktree = own_worktree(repo, agent)
    admin = admin_dir(worktree) if worktree is not None else None
    if admin is None:
        return False
    try:
        lines = (admin / "logs" / "HEAD").read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return False
    last = _entry(lines[-1]) if lines else None
    return last is not None and Seen.read(repo, agent.name).head_log != f"{last[0]} {last[1]} {last[2]}"


def _changed(
    repo: Repo, agent: agents.Agent, tips: Mapping[str, str], stats: dict[str, tuple[int, int]] | None
) -> bool:
    """Whether the agent's branch moved or its worktree's HEAD reflog grew since it was last recorded."""
    seen = Seen.read(repo, agent.name)
    branch = own_branch(repo, agent, tips)
    if branch is not None and tips.get(f"refs/heads/{branch}") not in (None, seen.branch_tip):
        return True
    worktree = own_worktree(repo, agent)
    admin = admin_dir(worktree) if worktree is not None else None
    if admin is None or branch is None:
        return False
    try:
        st = os.stat(admin / "logs" / "HEAD")
    except FileNotFoundError:
        return False
    now = (st.st_size, st.st_mtime_ns)
    if stats is not None and stats.get(agent.name) == now:
        return False
    if stats is not None:
        stats[agent.name] = now
    return True
