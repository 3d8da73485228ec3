"""The runner: a small supervisor that outlives the control plane.

It runs in its own process session, starts the runtime, streams its output to
agents/<name>/output.jsonl, and records the exit status in exit.json and the agent record.
Run as `python -m fracta.runner STATE_DIR NAME`, or `STATE_DIR --spare` to wait warm for a name
on stdin (see Launcher).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from . import agents, atomic, clock, events, missions, processes, progress
from . import repo as repo_mod
from .errors import AgentNotFound, FractaError

LAUNCH_FILE = "launch.json"
EXIT_FILE = "exit.json"
OUTPUT_FILE = "output.jsonl"
KILL_MARK = "kill-requested"
RUN_EVENT = "run"  # the `event` of the record that opens each run in output.jsonl


def spawn_detached(repo: repo_mod.Repo, name: str) -> tuple[int, int | None]:
    """Start the runner for `name` in a new session; returns (pid, start time)."""
    log = open(repo.agent_dir(name) / "runner.log", "ab")  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fracta.runner", str(repo.state), name],
            cwd=repo.root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        log.close()
    # Reap it when it exits so it never lingers as a zombie of the control plane.
    threading.Thread(target=proc.wait, daemon=True, name=f"reap-{name}").start()
    return proc.pid, processes.start_time(proc.pid)


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


def _failure(code: int, recorder: Recorder) -> str | None:
    """The reason recorded for a run that exited with `code` (None for a clean exit)."""
    if code == 0:
        return None
    said = recorder.failure()
    if code > 128 and code - 128 in (signal.SIGTERM, signal.SIGKILL, signal.SIGINT):
        reason = f"stopped by {signal.Signals(code - 128).name}"
        return f"{reason}; last said: {said}" if said else reason
    return f"exit code {code}: {said}" if said else f"exit code {code}"


def run(repo: repo_mod.Repo, name: str) -> int:
    folder = repo.agent_dir(name)
    launch = atomic.read_json(folder / LAUNCH_FILE)
    out = folder / OUTPUT_FILE
    # SIGTERM reaches the whole group: let the runtime exit first so we record its status.
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # PWD names the agent's worktree, never the folder the control plane was started in: OpenCode
    # trusts $PWD over its real working directory (it would run git in the user's checkout).
    env = {**os.environ, **launch["env"], "PWD": str(launch["cwd"])}
    try:
        proc = subprocess.Popen(
            launch["argv"],
            cwd=launch["cwd"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except OSError as exc:
        message = f"could not start {launch['argv'][0]!r}: {exc.strerror or exc}"
        atomic.append_line(out, json.dumps({"ts": clock.now(), "stream": "fracta", "line": message}))
        _finish(repo, name, 127, message)
        return 127
    me = os.getpid()
    started_ns = time.time_ns()
    agent = agents.update(
        repo, name, status=agents.Status.RUNNING, started_at=clock.now(), pid=me, pid_start=processes.start_time(me)
    )
    events.record(repo, "agent.started", agent=name, pid=os.getpid())
    progress.refresh(repo)
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
    _finish(repo, name, code, _failure(code, recorder), started_ns)
    return 0


class Launcher:
    """Starts runners for the spawner, keeping one warm spare: a runner process already started,
    with its imports done, waiting on stdin for the name of the agent it is to run.

    A spawn then skips the interpreter's start-up. If the control plane dies, the spare reads
    end-of-file and exits; a spare that is gone is simply replaced by a cold start.

    A new spare is started `refill_delay` seconds after a launch, not at once: its start-up
    would take CPU from the agent that is starting (a burst of spawns starts cold after the first).
    """

    def __init__(self, repo: repo_mod.Repo, refill_delay: float = 1.0) -> None:
        self.repo = repo
        self.refill_delay = refill_delay
        self._spare: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._stopped = False

    def launch(self, repo: repo_mod.Repo, name: str) -> tuple[int, int | None]:
        with self._lock:
            spare, self._spare = self._spare, None
        started: tuple[int, int | None] | None = None
        if spare is not None and spare.poll() is None and spare.stdin is not None:
            try:
                spare.stdin.write(f"{name}\n".encode())
                spare.stdin.close()
                started = spare.pid, processes.start_time(spare.pid)
                threading.Thread(target=spare.wait, daemon=True, name=f"reap-{name}").start()
            except OSError:
                started = None  # it died between poll and write: start cold
        if started is None:
            started = spawn_detached(repo, name)
        self._refill_later()
        return started

    def _refill_later(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()  # a later launch restarts the wait
            self._timer = threading.Timer(self.refill_delay, self.refill)
            self._timer.daemon = True
            self._timer.start()

    def refill(self) -> None:
        with self._lock:
            if self._stopped:
                return
            if self._spare is None or self._spare.poll() is not None:
                self._spare = subprocess.Popen(
                    [sys.executable, "-m", "fracta.runner", str(self.repo.state), "--spare"],
                    cwd=self.repo.root,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                    close_fds=True,
                )

    def stop(self) -> None:
        with self._lock:
            spare, self._spare = self._spare, None
            self._stopped = True
            if self._timer is not None:
                self._timer.cancel()
        if spare is not None and spare.stdin is not None:
            spare.stdin.close()  # end-of-file: the spare exits
            try:
                spare.wait(timeout=5)
            except subprocess.TimeoutExpired:
                spare.kill()


def _await_agent(repo: repo_mod.Repo) -> str | None:
    """As a spare: do the imports a run needs, then wait for an agent's name (None at end-of-file)."""
    from . import credentials, runtimes  # noqa: F401 - imported now so that a run starts warm

    name = sys.stdin.readline().strip()
    if not name:
        return None
    # From now on this is the agent's runner: its output goes where a cold start's would.
    log = os.open(repo.agent_dir(name) / "runner.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.dup2(null, 0)
    os.close(log)
    os.close(null)
    return name


def main(argv: list[str]) -> int:
    state, name = Path(argv[0]), argv[1]
    repo = repo_mod.find(env={"FRACTA_HOME": str(state)})
    if name == "--spare":
        waited = _await_agent(repo)
        if waited is None:
            return 0
        name = waited
    try:
        return run(repo, name)
    except FractaError as exc:
        print(f"fracta runner: {exc.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
