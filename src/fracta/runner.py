"""The runner: a small supervisor that outlives the control plane.

It runs in its own process session, starts the runtime, streams its output to
agents/<name>/output.jsonl, and records the exit status in exit.json and the agent record.
Run as `python -m fracta.runner STATE_DIR NAME`, or `STATE_DIR --spare` to wait warm for a name
on stdin (see launchers/local.py, which starts runners for the local and container launchers).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from . import agents, atomic, clock, events, journal, missions, processes, progress
from . import repo as repo_mod
from .errors import AgentNotFound, FractaError, StoreUnavailable

LAUNCH_FILE = "launch.json"
EXIT_FILE = "exit.json"
STORE_RETRY_PAUSE = 1.0  # seconds between a runner's attempts while the state store's database is away
OUTPUT_FILE = "output.jsonl"
KILL_MARK = "kill-requested"
RUN_EVENT = "run"  # the `event` of the record that opens each run in output.jsonl
GROUP_FILE = "group.json"  # the runner's process group and run marker (see processes.Group)
LOG_FILE = "runner.log"  # the runner's own log (fracta.logs lines, and any raw output of its own)

log = logging.getLogger("fracta.runner")


class Recorder:
    """Parses output lines as they arrive to keep the session id and tokens used on the agent record,
    and remembers why a run failed: the runtime's last error event, else its last stderr line."""

    def __init__(self, repo: repo_mod.Repo, agent: agents.Agent) -> None:
        from . import runtimes

        self.repo, self.name = repo, agent.name
        self.runtime = runtimes.get(agent.runtime)
        self.session = agent.session_id
        self.tokens = agent.tokens_used or 0  # a resumed session adds to what earlier runs used
        self.error: str | None = None
        self.last_stderr: str | None = None

    def failure(self) -> str | None:
        """Why the run failed, in one line, from what the runtime printed (None if it said nothing)."""
        return self.error or self.last_stderr

    def see(self, record: dict[str, Any]) -> None:
        stderr = record.get("stream") == "stderr"
        if stderr and str(record.get("line", "")).strip():
            self.last_stderr = str(record["line"]).strip()[:500]
        changes: dict[str, Any] = {}
        for event in self.runtime.parse(record):  # stderr too: Codex reports refused tool calls there
            if event.kind == "error":
                self.error = str(event.data.get("message") or event.text)[:500]
            if stderr:
                continue  # the session and usage come from the JSON stream on stdout only
            session = event.data.get("session_id") if event.kind == "session" else None
            if session and session != self.session:
                self.session = changes["session_id"] = str(session)
            if event.kind == "usage" and event.data.get("total_tokens"):
                self.tokens = changes["tokens_used"] = self.tokens + int(event.data["total_tokens"])
        if changes:
            agents.update(self.repo, self.name, **changes)


def run_mark(session_id: str | None) -> dict[str, Any]:
    """The output.jsonl record that opens a run: `peek` shows where each run, and each wake, starts."""
    line = f"fracta: woken, resuming session {session_id}" if session_id else "fracta: run started"
    return {"ts": clock.now(), "stream": "fracta", "event": RUN_EVENT, "session_id": session_id, "line": line}


def _pump(
    stream: IO[bytes], name: str, out: Path, recorder: Recorder | None = None, secrets: list[str] | None = None
) -> None:
    from .credentials import redact

    for raw in stream:
        line = redact(raw.decode("utf-8", errors="replace").rstrip("\n"), secrets or [])
        record = {"ts": clock.now(), "stream": name, "line": line}
        atomic.append_line(out, json.dumps(record, ensure_ascii=False))
        if recorder is not None:
            try:
                recorder.see(record)
            except Exception:  # the output is already safe in output.jsonl; a parse bug must not stop the pump
                recorder = None


def _record_exit(
    repo: repo_mod.Repo, name: str, code: int, error: str | None, finished: str, killed: bool, started_ns: int
) -> None:
    from . import runtimes

    agent = agents.load(repo, name)
    status = "killed" if killed else runtimes.get(agent.runtime).finished_status(code)
    if status == agents.Status.IDLE and not agent.session_id:
        status = "done"  # idle means resumable: without a session id there is nothing to resume
    agents.update(repo, name, status=agents.Status(status), exit_code=code, finished_at=finished, error=error, pid=None)
    events.record(repo, "agent.exited", agent=name, exit_code=code, status=status)
    if code == 0 and started_ns:
        from . import mailbox

        mailbox.acknowledge_run(repo, name, started_ns)  # its last read reached it: never hand it out again
    progress.refresh(repo)
    if status == agents.Status.IDLE:
        from . import wake

        wake.after_run(repo, name, started_ns)  # messages that came while it ran and it never read


def _finish(repo: repo_mod.Repo, name: str, code: int, error: str | None, started_ns: int = 0) -> None:
    folder = repo.agent_dir(name)
    finished = clock.now()
    killed = (folder / KILL_MARK).exists()
    exit_record: dict[str, Any] = {"schema": 1, "exit_code": code, "finished_at": finished, "error": error}
    try:
        atomic.write_json(folder / EXIT_FILE, exit_record)
    except FileNotFoundError:
        return  # the agent was killed and removed while we ran
    # An agent killed and removed after its exit record was written has nothing left to mark.
    with contextlib.suppress(AgentNotFound, FileNotFoundError):
        _record_exit(repo, name, code, error, finished, killed, started_ns)
    missions.wake(repo)


def _record_start(repo: repo_mod.Repo, name: str) -> agents.Agent:
    """Record that the program runs, waiting out a database that is away (postgres): giving up
    would end this runner with its program unrecorded, and the reaper would settle it `lost`."""
    while True:
        try:
            agent = agents.update(repo, name, status=agents.Status.RUNNING, started_at=clock.now())
            events.record(repo, "agent.started", agent=name, pid=os.getpid())
            progress.refresh(repo)
            return agent
        except StoreUnavailable as exc:
            log.warning("cannot record the start yet", extra={"event": "runner.store_away", "error": exc.message})
            time.sleep(STORE_RETRY_PAUSE)


def _failure(code: int, recorder: Recorder) -> str | None:
    """The reason recorded for a run that exited with `code` (None for a clean exit)."""
    if code == 0:
        return None
    said = recorder.failure()
    if code > 128 and code - 128 in (signal.SIGTERM, signal.SIGKILL, signal.SIGINT):
        reason = f"stopped by {signal.Signals(code - 128).name}"
        return f"{reason}; last said: {said}" if said else reason
    return f"exit code {code}: {said}" if said else f"exit code {code}"


def run(repo: repo_mod.Repo, name: str, launch_id: str | None = None, signalled: list[int] | None = None) -> int:
    """Run agent `name`'s launch to its end; a SIGTERM received meanwhile is added to `signalled`."""
    from .logs import Stopped

    folder = repo.agent_dir(name)
    launch = atomic.read_json(folder / LAUNCH_FILE)
    out = folder / OUTPUT_FILE
    # SIGTERM reaches the whole group: let the runtime exit first so we record its status. Before
    # there is a runtime, there is nothing to wait for: stop now (through the runner's exit log).
    started: list[subprocess.Popen[bytes]] = []
    seen = signalled if signalled is not None else []

    def on_term(signum: int, frame: Any) -> None:
        seen.append(signum)
        if not started:
            raise Stopped(signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        first_start(launch)
        proc = _start_program(repo, name, launch, launch_id)
        started.extend([proc] if proc else [])
    except OSError as exc:
        message = f"could not start {launch['argv'][0]!r}: {exc.strerror or exc}"
        atomic.append_line(out, json.dumps({"ts": clock.now(), "stream": "fracta", "line": message}))
        _finish(repo, name, 127, message)
        return 127
    if proc is None:
        return 0  # killed (or replaced) before its program started: nothing to run, nothing to record
    started_ns = time.time_ns()
    journal.checkpoint("runner-started")  # test-only: tests/test_database_outage.py
    agent = _record_start(repo, name)
    atomic.append_line(out, json.dumps(run_mark(agent.session_id)))  # before the pumps: it precedes the run's output
    assert proc.stdout is not None and proc.stderr is not None
    secrets = [str(s) for s in launch.get("redact", [])]
    recorder = Recorder(repo, agent)
    pumps = [
        threading.Thread(target=_pump, args=(proc.stdout, "stdout", out, recorder, secrets), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, "stderr", out, recorder, secrets), daemon=True),
    ]
    for pump in pumps:
        pump.start()
    code = proc.wait()
    for pump in pumps:
        pump.join()
    # A signal death is reported shell-style: 128 + signal number.
    code = code if code >= 0 else 128 - code
    _log_agent_exit(name, code)
    _finish(repo, name, code, _failure(code, recorder), started_ns)
    return 0


FIRST_START_TIMEOUT = 120.0  # seconds a runtime's one-time set-up may take (OpenCode's: 1.6 s here)


def first_start(launch: dict[str, Any]) -> None:
    """Run the runtime's one-time set-up (Launch.first_start) unless the file it leaves exists:
    once per data folder, under a lock there, so agents that start at once do not race it. Its
    failure is not the agent's: the program then starts as it would have, and says what is wrong.
    It runs in the runner's process group, so a kill meanwhile stops it too.
    """
    spec = launch.get("first_start")
    if not spec:
        return
    env = {**os.environ, **launch["env"]}
    data = Path(env.get("XDG_DATA_HOME") or Path(env.get("HOME") or Path.home()) / ".local" / "share")
    creates = data / spec["creates"]
    if creates.exists():
        return
    try:
        lock = creates.parent / ".fracta-first-start.lock"
        with atomic.lock(lock, FIRST_START_TIMEOUT, unless=creates.exists) as mine:
            if mine and not creates.exists():
                subprocess.run(
                    spec["argv"],
                    cwd=launch["cwd"],
                    env={**env, "PWD": str(launch["cwd"])},
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=FIRST_START_TIMEOUT,
                    check=False,
                )
    except (OSError, subprocess.SubprocessError, FractaError) as exc:
        log.warning(f"the runtime's first start did not finish: {exc}", extra={"event": "runner.first_start_failed"})


def _log_agent_exit(name: str, code: int) -> None:
    """The runner's line for its agent's exit: the code, and the signal that ended it, if one did."""
    signum = code - 128 if code > 128 else None
    try:
        sig = signal.Signals(signum).name if signum else None
    except ValueError:  # 128 + n for an n that is no signal: a plain exit code
        sig = None
    extra = {"event": "agent.exited", "agent": name, "exit_code": code, "signal": sig}
    log.info("the agent exited" + (f" on {sig}" if sig else f" with code {code}"), extra=extra)


def _start_program(
    repo: repo_mod.Repo, name: str, launch: dict[str, Any], launch_id: str | None
) -> subprocess.Popen[bytes] | None:
    """Start the agent's program, unless it was killed or another launch replaced this one.

    Under the agent's lock, as `kill` marks an agent: either kill comes first and the program
    never starts, or the group is on record before the program starts and kill stops all of it.
    """
    folder = repo.agent_dir(name)
    launch_id = launch_id or str(launch.get("launch_id") or "")
    me = os.getpid()
    group = processes.Group(
        pgid=os.getpgid(0), leader_start=processes.start_time(me), home=str(repo.state), marker=f"{name}/{launch_id}"
    )
    # PWD names the agent's worktree, never the folder the control plane was started in: OpenCode
    # trusts $PWD over its real working directory (it would run git in the user's checkout).
    env = {**os.environ, **launch["env"], "PWD": str(launch["cwd"]), processes.RUN_VAR: group.marker}
    try:
        with agents.holding(repo, name) as agent:
            current = atomic.read_json(folder / LAUNCH_FILE).get("launch_id")
            if (folder / KILL_MARK).exists() or agent.status != agents.Status.STARTING or (current or "") != launch_id:
                return None
            atomic.write_json(folder / GROUP_FILE, group.to_dict())
            agents.write(repo, dataclasses.replace(agent, pid=me, pid_start=group.leader_start))
            return subprocess.Popen(
                launch["argv"],
                cwd=launch["cwd"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
    except (AgentNotFound, FileNotFoundError):
        return None  # killed and removed before we started


def _await_agent(repo: repo_mod.Repo) -> tuple[str, str] | None:
    """As a spare: do the imports a run needs, then wait for an agent's name and launch id
    (None at end-of-file)."""
    from . import credentials, runtimes  # noqa: F401 - imported now so that a run starts warm

    name, _, launch_id = sys.stdin.readline().strip().partition(" ")
    if not name:
        return None
    # From now on this is the agent's runner: its output goes where a cold start's would.
    out = os.open(repo.agent_dir(name) / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.dup2(null, 0)
    os.close(out)
    os.close(null)
    return name, launch_id


def main(argv: list[str]) -> int:
    state, name = Path(argv[0]), argv[1]
    launch_id = argv[2] if len(argv) > 2 else None
    repo = repo_mod.find(env={"FRACTA_HOME": str(state)})
    if name == "--spare":
        waited = _await_agent(repo)
        if waited is None:
            return 0  # no agent: nothing to log to (the control plane that kept it warm ended)
        name, launch_id = waited
    from . import logs

    if not repo.agent_dir(name).is_dir():
        return 0  # the agent was killed and removed before this runner got to it
    logs.setup(repo.agent_dir(name), "runner", foreground=False)
    signalled: list[int] = []
    try:
        with logs.exit_logged("runner", agent=name) as ending:
            extra = {"event": "runner.started", "agent": name, "pid": os.getpid(), "launch_id": launch_id}
            log.info("runner started", extra=extra)
            try:
                ending.code = run(repo, name, launch_id, signalled)
            except FileNotFoundError:
                ending.code = 0  # the agent was killed and removed while this runner got to it
            ending.signal = signalled[0] if signalled else None
    except FractaError as exc:
        print(f"fracta runner: {exc.message}", file=sys.stderr)
        return exc.exit_code
    return ending.code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
