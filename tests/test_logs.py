"""fracta's own logs: dotted keys in real runs, exits logged, rotation under concurrent writers,
and `fracta logs` (its output, -n, an unknown name, --follow across rotation)."""

from __future__ import annotations

import ast
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import CliRunner
from lifecycle_helpers import cleanup, spawn, use_free_port, wait_for, wait_status

from fracta import logs
from fracta import repo as repo_mod

PY = sys.executable
SRC = Path(__file__).resolve().parents[1] / "src" / "fracta"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "logs.md"
LEVELS = {"debug", "info", "warning", "error", "exception", "critical", "log"}


@pytest.fixture
def fr(initialized: repo_mod.Repo, monkeypatch: pytest.MonkeyPatch) -> repo_mod.Repo:
    use_free_port(initialized)
    monkeypatch.setenv("PATH", f"{Path(PY).parent}{os.pathsep}{os.environ['PATH']}")
    return initialized


def records(path: Path) -> list[dict[str, Any]]:
    """Every line of a log, each of which must be a JSON object with a dotted key and a sentence."""
    found = []
    for text in path.read_text().splitlines():
        data = json.loads(text)
        assert logs.EVENT_KEY.fullmatch(data["event"]), text
        assert isinstance(data["message"], str) and data["message"], text
        found.append(data)
    return found


def documented() -> set[str]:
    return set(re.findall(r"^\| `([a-z0-9_.]+)` \|", DOCS.read_text(), re.M))


def runner_log(r: repo_mod.Repo, name: str) -> Path:
    return r.agent_dir(name) / "runner.log"


def runner_ended(r: repo_mod.Repo, name: str) -> bool:
    path = runner_log(r, name)
    return path.exists() and '"runner.exited"' in path.read_text()


def test_a_real_control_plane_run_logs_dotted_keys_and_fracta_logs_shows_them(
    fr: repo_mod.Repo, cli: CliRunner
) -> None:
    with cleanup(fr):
        assert cli("up").returncode == 0
        spawn(cli, "quick", PY, "-c", "print('hi')")
        spawn(cli, "shot", PY, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)")
        spawn(cli, "long", PY, "-c", "import time; time.sleep(600)")
        wait_for("the runners to end", lambda: runner_ended(fr, "quick") and runner_ended(fr, "shot"))
        wait_status(fr, "long", "running")
        assert cli("kill", "long").returncode == 0
        assert cli("down").returncode == 0

    control = records(fr.logs_dir / "control.log")
    keys = [d["event"] for d in control]
    companions = ("graph.", "strategies.")  # the embedded graph and the strategy runner start in between
    assert [k for k in keys if not k.startswith(companions)][:2] == ["control.started", "control.listening"]
    assert {d["agent"] for d in control if d["event"] == "mission.started"} == {"quick", "shot", "long"}
    assert control[-1] | {"time": None} == {
        "time": None,
        "level": "info",
        "component": "control",
        "event": "control.exited",
        "message": control[-1]["message"],
        "agent": None,
        "exit_code": 0,
        "how": "signal",
        "signal": "SIGTERM",
    }
    quick = records(runner_log(fr, "quick"))
    assert [d["event"] for d in quick] == ["runner.started", "agent.exited", "runner.exited"]
    assert (quick[1]["exit_code"], quick[1]["signal"], quick[1]["agent"]) == (0, None, "quick")
    assert (quick[2]["exit_code"], quick[2]["how"]) == (0, "clean")
    shot = records(runner_log(fr, "shot"))
    [died] = [d for d in shot if d["event"] == "agent.exited"]
    assert (died["exit_code"], died["signal"]) == (128 + signal.SIGTERM, "SIGTERM")
    assert set(keys) | {d["event"] for d in quick + shot} <= documented()

    shown = cli("logs")
    assert shown.returncode == 0, shown.stderr
    assert [line.split()[2].rstrip(":") for line in shown.stdout.splitlines()] == keys  # time, level, key
    assert "control.exited: " in shown.stdout.splitlines()[-1]
    assert "agents: quick, shot" in shown.stderr  # what else there is to read
    last = cli("logs", "-n", "1")
    assert len(last.stdout.splitlines()) == 1 and " control.exited" in last.stdout
    raw = cli("logs", "control", "--json", "-n", "2")
    assert raw.stdout.splitlines() == (fr.logs_dir / "control.log").read_text().splitlines()[-2:]

    timeline = cli("logs", "quick").stdout
    for key in ("agent.spawned", "mission.started", "runner.started", "agent.exited", "runner.exited"):
        assert f" {key} [quick]" in timeline, timeline
    assert " agent.killed [long]" in cli("logs", "long").stdout  # removed, but still named in the event log

    unknown = cli("logs", "nope")
    assert unknown.returncode == 3
    assert "no log or agent named 'nope'" in unknown.stderr and "quick, shot" in unknown.stderr


def test_every_log_call_in_fracta_names_a_dotted_documented_key() -> None:
    keys: set[str] = set()
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        if "logging.getLogger(" not in text and "_log(" not in text:
            continue  # not a log writer (events.py builds its own {"event": ...} lines)
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict):  # {"event": "a.key", ...}: the extra of a log call
                for key, value in zip(node.keys, node.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value == "event" and isinstance(value, ast.Constant):
                        keys.add(str(value.value))
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            if isinstance(node.func.value, ast.Name) and node.func.value.id == "log" and node.func.attr in LEVELS:
                assert any(k.arg == "extra" for k in node.keywords), f"{path.name}:{node.lineno} logs without a key"
        for node in ast.walk(tree):  # keys passed to the writers that take one as an argument
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in {"_note", "_log"}:
                keys |= {
                    str(a.value) for a in node.args if isinstance(a, ast.Constant) and str(a.value).count(".") == 1
                }
    keys -= {"..."}  # the docstring's example
    exits = {f"{c}.exited" for c in ("control", "gateway", "runner", "serve", "hook")}
    assert len(keys) > 50 and {"hook.failed", "serve.reconnecting"} <= keys
    assert [k for k in keys if not logs.EVENT_KEY.fullmatch(k)] == []
    assert keys | exits <= documented(), sorted(keys | exits - documented())


def serve_log(r: repo_mod.Repo) -> list[dict[str, Any]]:
    path = r.logs_dir / "serve.log"
    return records(path) if path.exists() else []


def test_fracta_serve_logs_a_clean_exit_when_its_client_closes_stdin(initialized: repo_mod.Repo) -> None:
    done = subprocess.run(
        [PY, "-m", "fracta", "serve"], input=b"", capture_output=True, cwd=initialized.root, timeout=60
    )
    assert done.returncode == 0, done.stderr
    started, ended = serve_log(initialized)
    assert (started["event"], ended["event"]) == ("serve.started", "serve.exited")
    assert (ended["how"], ended["exit_code"], ended.get("signal")) == ("clean", 0, None)


def test_fracta_serve_logs_its_end_by_sigterm_and_exits_with_its_code(initialized: repo_mod.Repo) -> None:
    proc = subprocess.Popen(
        [PY, "-m", "fracta", "serve"], stdin=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=initialized.root
    )
    try:
        wait_for("serve to start", lambda: serve_log(initialized))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()
        assert proc.stdin is not None
        proc.stdin.close()
    ended = serve_log(initialized)[-1]
    assert (ended["event"], ended["how"], ended["signal"], ended["exit_code"]) == (
        "serve.exited",
        "signal",
        "SIGTERM",
        143,
    )


def test_an_unhandled_exception_is_logged_as_the_exit_with_its_traceback(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from fracta import logs\n"
        "logs.setup(Path(sys.argv[1]), 'control', foreground=False)\n"
        "with logs.exit_logged('control'):\n"
        "    raise RuntimeError('boom')\n"
    )
    done = subprocess.run([PY, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "RuntimeError: boom" in done.stderr
    [ended] = records(tmp_path / "control.log")
    assert (ended["event"], ended["level"], ended["how"], ended["exit_code"]) == (
        "control.exited",
        "critical",
        "crash",
        1,
    )
    assert ended["exception"] == "RuntimeError" and "RuntimeError: boom" in ended["traceback"]


WRITER = """
import sys, time
from pathlib import Path
from fracta import logs
folder, who, count, go = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
logs.setup(folder, "hooks", foreground=False)
import logging
log = logging.getLogger("fracta.hooks")
while not go.exists():  # all writers start together
    time.sleep(0.001)
for seq in range(count):
    log.info("line", extra={"event": "test.line", "writer": who, "seq": seq})
"""


def test_rotation_under_concurrent_writers_loses_no_line_and_splits_none(tmp_path: Path) -> None:
    writers, count, limit = 4, 250, 64_000  # about 190 kB in all: two rotations, none dropped
    go = tmp_path / "go"
    env = {**os.environ, logs.MAX_BYTES_VAR: str(limit)}
    procs = [
        subprocess.Popen([PY, "-c", WRITER, str(tmp_path), f"w{n}", str(count), str(go)], env=env)
        for n in range(writers)
    ]
    go.touch()
    assert [p.wait(timeout=120) for p in procs] == [0] * writers
    log = tmp_path / "hooks.log"
    files = [log.with_name(f"hooks.log.{n}") for n in range(logs.KEEP, 0, -1)] + [log]
    assert not files[0].exists(), "the test writes less than the kept files hold: nothing may be dropped"
    assert files[-2].exists(), "the log was rotated"
    seen: dict[str, list[int]] = {f"w{n}": [] for n in range(writers)}
    for path in files:
        if path.exists():
            assert path == log or path.stat().st_size > limit  # rotated only past the limit
            for data in records(path):  # each line whole: it parses
                seen[data["writer"]].append(data["seq"])
    assert seen == {who: list(range(count)) for who in seen}  # every line once, each writer's in order


def test_fracta_logs_reads_back_into_rotated_files_for_n_lines(initialized: repo_mod.Repo, cli: CliRunner) -> None:
    log = initialized.logs_dir / "gateway.log"
    for n in range(6):
        logs.append(log, logs.line("info", "gateway", "test.line", f"line {n}"), limit=1 if n in (1, 3) else None)
    assert log.with_name("gateway.log.2").exists()
    shown = cli("logs", "gateway", "-n", "5", "--json")
    assert [json.loads(t)["message"] for t in shown.stdout.splitlines()] == [f"line {n}" for n in range(1, 6)]


def test_fracta_logs_follow_prints_lines_appended_after_it_started_across_rotation(
    initialized: repo_mod.Repo,
) -> None:
    log = initialized.logs_dir / "control.log"
    for n in range(3):
        logs.append(log, logs.line("info", "control", "test.before", f"before {n}"))
    proc = subprocess.Popen(
        [PY, "-m", "fracta", "logs", "--follow", "-n", "1", "--json"],
        cwd=initialized.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for text in proc.stdout or []:
            lines.put(text)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert json.loads(lines.get(timeout=60))["message"] == "before 2"
        for n in range(6):  # each line read before the next is written; most rotate the log at once
            logs.append(log, logs.line("info", "control", "test.after", f"after {n}"), limit=1 if n % 3 else None)
            assert json.loads(lines.get(timeout=60))["message"] == f"after {n}"
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        reader.join(timeout=60)  # it reads to the end of the pipe, then the pipe is closed
        assert proc.stdout is not None
        proc.stdout.close()
    assert log.with_name("control.log.3").exists()  # it followed through more rotations than files kept


@pytest.mark.both_backends
def test_an_agents_timeline_shows_its_lifecycle_events_from_either_store(fr: repo_mod.Repo, cli: CliRunner) -> None:
    with cleanup(fr):
        assert cli("up").returncode == 0
        spawn(cli, "quick", PY, "-c", "print('hi')")
        wait_for("quick's runner to end", lambda: runner_ended(fr, "quick"))
        assert cli("down").returncode == 0
    timeline = cli("logs", "quick").stdout
    for key in ("agent.spawned", "agent.started", "runner.started", "agent.exited"):
        assert f" {key} [quick]" in timeline, timeline


@pytest.mark.both_backends
def test_following_an_agents_timeline_shows_events_recorded_after_it_started(fr: repo_mod.Repo) -> None:
    from fracta import events, logview

    events.record(fr, "agent.spawned", agent="later")
    fr.agent_dir("later").mkdir(parents=True, exist_ok=True)  # its runner.log's folder: a known name
    view = logview.view(fr, "later")
    lines, tails = logview.read(view, 10)
    assert [line.data["event"] for line in lines if line.data] == ["agent.spawned"]
    events.record(fr, "agent.killed", agent="later")
    events.record(fr, "agent.killed", agent="someone-else")
    followed = logview.follow(view, tails, poll=0.01)
    line = next(followed)
    assert line.data is not None and (line.data["event"], line.data["agent"]) == ("agent.killed", "later")
    followed.close()
