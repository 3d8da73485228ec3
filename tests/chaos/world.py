"""The chaos run's world: its folders, every CLI call it makes, and its model of what should exist.

The model is what the run did, not what fracta says: which agent incarnations were spawned and
removed, which messages were sent and read, which inputs were bad. The invariants compare it
with what fracta and git show.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fracta import repo as repo_mod

from . import agent

CLI_TIMEOUT = 120.0  # no CLI call may take longer; a hang is reported as a failure, not waited out
CHESSMASTER = "chessmaster"
ACTIVE = frozenset({"queued", "starting", "running"})


@dataclass(frozen=True)
class Call:
    """One CLI call: what ran, how it ended, and what it said."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        try:
            data = json.loads(self.stdout)
        except json.JSONDecodeError:
            return {}
        return data if isinstance(data, dict) else {}

    def short(self) -> str:
        return f"fracta {' '.join(self.argv)} -> {self.returncode}"


@dataclass
class Incarnation:
    """One life of an agent name: spawned once, removed at most once."""

    name: str
    ident: str  # marks its processes (CHAOS_ID) and its files; unique in the run
    behaviour: str
    uncertain: bool = False  # spawned while the control plane was SIGKILLed: it may not exist
    may_be_lost: bool = False  # its runner (or a control plane while it started) was SIGKILLed
    removed: bool = False
    runners: set[tuple[int, int | None]] = field(default_factory=set)  # (pid, start) seen on its record
    saved_refs: list[str] = field(default_factory=list)  # where a forced kill saved its work


@dataclass(frozen=True)
class Violation:
    invariant: str
    detail: str
    step: int  # the operation after which it was seen

    def __str__(self) -> str:
        return f"[after step {self.step}] {self.invariant}: {self.detail}"


class World:
    """A chaos run in one temporary folder: the repository, the agents' logs, the model."""

    def __init__(self, base: Path, run: str, env: dict[str, str], backend: str = "files") -> None:
        self.run = run
        self.backend = backend  # the state store: "files" or "postgres" (FRACTA_DATABASE_URL in env)
        self.root = base / "project"
        self.state = self.root / ".fracta"
        self.logs = base / "agent-logs"  # outside the repo: nothing fracta does can remove it
        self.gate = base / "release"
        self.script = base / "agent.sh"
        self.env = env
        self.step = 0
        self.log: list[str] = []  # the operation log printed on failure (concrete, replayable steps)
        self.calls: list[Call] = []
        self.violations: list[Violation] = []
        self.live: dict[str, Incarnation] = {}  # name -> the incarnation that should exist
        self.gone: list[Incarnation] = []
        self.unsettled: dict[str, Incarnation] = {}  # spawns a crash interrupted, not (yet) agents
        self.serial = 0
        # message id -> (recipient name, recipient incarnation ident or "chessmaster")
        self.sent: dict[str, tuple[str, str]] = {}
        self.reads: Counter[str] = Counter()
        self.read_bodies: Counter[str] = Counter()  # message text -> reads by the run's own inbox calls
        self.keyed: dict[str, tuple[str, str]] = {}  # text of a send retried by key -> (to, incarnation)
        self.server: Any = None  # postgres: the suite's PgServer (tests/pg.py) holding `dbname`
        self.dbname = ""
        self._repo: repo_mod.Repo | None = None
        self.garbage: set[str] = set()  # inboxes holding a garbage message file
        self.checks: Counter[str] = Counter()  # invariant -> times checked
        self.names_made = 0
        self.reported_lines: set[tuple[str, int]] = set()  # log lines already reported as tracebacks

    # -- setting up -------------------------------------------------------------------------

    def create(self, max_agents: int) -> None:
        self.root.mkdir()
        self.logs.mkdir()
        agent.write_script(self.script, self.logs, self.gate)
        self.git("init", "-q")
        (self.root / "README.md").write_text("# chaos project\n")
        (self.root / "shared.txt").write_text("shared, as main has it\n")
        self.git("add", "README.md", "shared.txt")
        self.git("commit", "-q", "-m", "initial commit")
        self.expect(self.cli("init", "--no-wire"), {0}, "init")
        config = self.state.parent / "fracta.yaml"
        text = config.read_text().replace("max_agents: 4", f"max_agents: {max_agents}")
        if self.backend == "postgres":  # short leases and sweeps: takeovers happen within the run
            chosen = "  backend: postgres\n  url: ${FRACTA_DATABASE_URL}\n"
            text = text.replace("  backend: files ", chosen + "  #", 1).replace("lease_seconds: 15", "lease_seconds: 2")
            text = text.replace("sweep_interval: 60", "sweep_interval: 1")
            text = text.replace("retry_seconds: 10", "retry_seconds: 4")  # a crash longer than that: exit 8
        config.write_text(text)

    @property
    def fracta(self) -> repo_mod.Repo:
        """This run's fracta, read in this process through its API (either backend's store)."""
        if self._repo is None:
            self._repo = repo_mod.find(self.root, env=self.env)
        return self._repo

    def close(self) -> None:
        if self._repo is not None and "store" in vars(self._repo):  # opened only if used
            self._repo.store.close()
        self._repo = None

    # -- running things -----------------------------------------------------------------------

    def cli(self, *args: str, timeout: float = CLI_TIMEOUT) -> Call:
        """Run the real `fracta` CLI in the repository and keep the call for the traceback check."""
        return self.finish(self.start(*args), timeout)

    def start(self, *args: str) -> tuple[tuple[str, ...], subprocess.Popen[str]]:
        """Start a CLI call without waiting for it (to race it against another); see `finish`."""
        argv = [sys.executable, "-m", "fracta", *args]
        proc = subprocess.Popen(
            argv, cwd=self.root, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        return tuple(args), proc

    def finish(self, started: tuple[tuple[str, ...], subprocess.Popen[str]], timeout: float = CLI_TIMEOUT) -> Call:
        """Wait (bounded) for a started CLI call and keep it like any other."""
        args, proc = started
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            self.violate("every CLI call ends", f"fracta {' '.join(args)} still ran after {timeout:g}s: {err!r}")
        call = Call(args, proc.returncode, out, err)
        self.record(call)
        return call

    def record(self, call: Call) -> None:
        self.calls.append(call)
        if call.argv[:1] != ("list",) or call.returncode != 0:  # the checks' own listings are noise
            self.note(f"   {call.short()[:160]}")
        self.checks["no traceback on a CLI call's stderr"] += 1
        if "Traceback" in call.stderr or "this is a bug in fracta" in call.stderr:
            self.violate("no traceback on a CLI call's stderr", f"{call.short()}\n{call.stderr.strip()}")

    def git(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(["git", *args], cwd=self.root, capture_output=True, text=True, env=self.env)
        if check and proc.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        return proc.stdout.strip()

    def is_ancestor(self, commit: str, of: str) -> bool:
        ancestor = subprocess.run(["git", "merge-base", "--is-ancestor", commit, of], cwd=self.root, env=self.env)
        return ancestor.returncode == 0

    def expect(self, call: Call, codes: set[int], what: str) -> bool:
        """Note a violation unless `call` ended with one of `codes`."""
        self.checks["every call ends with the README's exit code for its case"] += 1
        if call.returncode in codes:
            return True
        self.violate(
            "every call ends with the README's exit code for its case",
            f"{what}: {call.short()}, expected {sorted(codes)}\nstdout: {call.stdout.strip()[:500]}\n"
            f"stderr: {call.stderr.strip()[:500]}",
        )
        return False

    def violate(self, invariant: str, detail: str) -> None:
        """Note a broken promise (once: a leftover seen again by every later check is one finding)."""
        if any(v.invariant == invariant and v.detail == detail for v in self.violations):
            return
        self.violations.append(Violation(invariant, detail, self.step))
        self.note(f"   !! {invariant}: {detail.splitlines()[0] if detail else ''}")

    def note(self, line: str) -> None:
        self.log.append(line)

    # -- the model ----------------------------------------------------------------------------

    def new_incarnation(self, name: str, behaviour: str) -> Incarnation:
        self.serial += 1
        self.unsettled.pop(name, None)  # a new spawn of the name settles the old one
        return Incarnation(name=name, ident=f"{name}-{self.serial}", behaviour=behaviour)

    def forget(self, name: str) -> Incarnation | None:
        inc = self.live.pop(name, None)
        if inc is not None:
            inc.removed = True
            self.gone.append(inc)
        self.garbage.discard(name)
        return inc

    def control_plane_killed(self) -> None:
        """A control plane was SIGKILLed: an agent it was starting may be left `lost`."""
        for inc in self.live.values():
            inc.may_be_lost = True

    def names(self) -> list[str]:
        return sorted(self.live)

    def agents(self) -> tuple[Call, dict[str, dict[str, Any]]]:
        """`fracta list --json`: the call and every agent it shows, by name."""
        call = self.cli("list", "--json")
        shown = {str(a["name"]): a for a in call.json().get("agents", []) if isinstance(a, dict)}
        return call, shown

    # -- what the agents logged ------------------------------------------------------------------

    def logged(self, filename: str) -> list[tuple[str, str]]:
        """(ident, value) lines of one of the agents' logs."""
        path = self.logs / filename
        if not path.exists():
            return []
        pairs = []
        for line in path.read_text().splitlines():
            ident, _, value = line.partition(" ")
            if value:
                pairs.append((ident, value))
        return pairs

    def agent_json_logs(self, prefix: str) -> list[dict[str, Any]]:
        """The JSON documents agents wrote (sent-*, read-*); a file cut short by a kill is skipped."""
        docs = []
        for path in sorted(self.logs.glob(f"{prefix}-*.json")):
            try:
                data = json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(data, dict):
                docs.append(data)
        return docs


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll `check` for at most `timeout` seconds; False if it never held (the caller says why)."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def cli_env(base_env: dict[str, str]) -> dict[str, str]:
    """The CLI's environment: the test's, with fracta's interpreter first on PATH (agents call it)."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{base_env.get('PATH', '')}"
    return {**base_env, "PATH": path}
