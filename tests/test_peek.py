"""`fracta peek` on an agent's real output.jsonl: where each run (and each wake) starts, and
OpenCode's per-step token reports summed into one line per run, while the record counts them all.

The runs are real OpenCode output (tests/data/runtime_output/opencode-tools.jsonl: three steps,
two tool calls then the final answer) written the way the runner writes a run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import CliRunner

from fracta import agents, atomic, peek, runner
from fracta import repo as repo_mod

pytestmark = pytest.mark.both_backends

RUN = (Path(__file__).parent / "data" / "runtime_output" / "opencode-tools.jsonl").read_text().splitlines()


def two_runs(r: repo_mod.Repo, name: str) -> str:
    """An OpenCode agent whose output holds a first run and a woken run of the same session."""
    session = next(json.loads(json.loads(line)["line"])["sessionID"] for line in RUN if "sessionID" in line)
    agents.create(r, agents.new(name, runtime="opencode", status=agents.Status.IDLE, session_id=session))
    out = r.agent_dir(name) / runner.OUTPUT_FILE
    for mark in (runner.run_mark(None), runner.run_mark(session)):
        atomic.append_line(out, json.dumps(mark))
        for line in RUN:
            atomic.append_line(out, line)
    return session


def test_each_run_starts_with_a_marker_and_a_wake_names_the_session_it_resumes(initialized: repo_mod.Repo) -> None:
    session = two_runs(initialized, "oc")
    events = peek.peek(initialized, "oc", n=100).events
    marks = [e.text for e in events if e.kind == "run"]
    assert marks == ["── run started ──", f"── woken: resuming session {session} ──"]
    assert events[0].kind == "run"
    second = events.index(next(e for e in events if e.kind == "run" and e.data["session_id"] == session))
    assert [e.kind for e in events[second + 1 :] if e.kind in ("tool_call", "text")] == [
        "tool_call",
        "tool_call",
        "text",
    ]


def test_opencode_step_usage_shows_once_per_run_summed_and_the_record_counts_every_step(
    initialized: repo_mod.Repo,
) -> None:
    two_runs(initialized, "oc")
    events = peek.peek(initialized, "oc", n=100).events
    usage = [e for e in events if e.kind == "usage"]
    assert [u.data["total_tokens"] for u in usage] == [330, 330]  # three steps of 100 in + 10 out, per run
    assert [u.text for u in usage] == ["330 tokens (300 in, 30 out)"] * 2
    assert all(events[events.index(u) - 1].kind == "text" for u in usage)  # at the end of each run
    # The runner's recorder still sees each step: the agent's tokens_used is the sum of them all.
    recorder = runner.Recorder(initialized, agents.update(initialized, "oc", tokens_used=0))
    for line in RUN * 2:
        recorder.see(json.loads(line))
    assert agents.load(initialized, "oc").tokens_used == 660


def test_a_run_whose_start_was_not_read_shows_no_partial_usage(initialized: repo_mod.Repo) -> None:
    two_runs(initialized, "oc")
    out = initialized.agent_dir("oc") / runner.OUTPUT_FILE
    lines = out.read_bytes().splitlines(keepends=True)
    middle = sum(len(line) for line in lines[:4])  # the mark and the first run's first three records
    events = peek.peek(initialized, "oc", since=middle).events  # how --follow reads on
    usage = [e for e in events if e.kind == "usage"]
    assert [u.data["total_tokens"] for u in usage] == [330]  # the second run's, whole; none for the first
    assert events.index(usage[0]) > events.index(next(e for e in events if e.kind == "run"))


def test_the_cli_prints_the_markers(initialized: repo_mod.Repo, cli: CliRunner) -> None:
    session = two_runs(initialized, "oc")
    shown = cli("peek", "oc", "-n", "100")
    assert shown.returncode == 0, shown.stderr
    assert "── run started ──" in shown.stdout and f"── woken: resuming session {session} ──" in shown.stdout
    assert shown.stdout.count("tokens (") == 2
