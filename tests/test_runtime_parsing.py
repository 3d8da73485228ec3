"""Each adapter's parse() on real output recorded from the CLIs (tests/data/runtime_output/).

The files are output.jsonl records as the runner writes them: `*-tools` and `*-api-error` came
from the CLIs run by hand under the scripted model (mcp-server-time as the MCP server: one good
call, one failing call), `*-fracta*` from agents spawned by tests/test_runtimes_e2e.py, and
`codex-commands` from codex run by hand with fracta's sandbox settings in a linked worktree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fracta import runtimes
from fracta.runtimes.base import OutputEvent

DATA = Path(__file__).parent / "data" / "runtime_output"


def parsed(runtime: str, case: str) -> list[OutputEvent]:
    adapter = runtimes.get(runtime)
    events: list[OutputEvent] = []
    for line in (DATA / f"{runtime}-{case}.jsonl").read_text().splitlines():
        events.extend(adapter.parse(json.loads(line)))
    return events


def kinds(events: list[OutputEvent], *wanted: str) -> list[OutputEvent]:
    return [e for e in events if e.kind in wanted]


def summary(events: list[OutputEvent]) -> list[tuple[str, Any]]:
    """(kind, the fact that matters) for the semantic events, in order."""
    facts: list[tuple[str, Any]] = []
    for e in events:
        if e.kind == "tool_call":
            facts.append((e.kind, e.text))
        elif e.kind == "tool_result":
            facts.append((e.kind, e.data["is_error"]))
        elif e.kind == "usage":
            facts.append((e.kind, e.data["total_tokens"]))
        elif e.kind == "text":
            facts.append((e.kind, e.text))
    return facts


@pytest.mark.parametrize("runtime", ["claude", "codex", "opencode"])
def test_a_run_with_two_tool_calls_reads_as_calls_results_text_and_usage(runtime: str) -> None:
    events = parsed(runtime, "tools")
    facts = [f for f in summary(events) if f[0] != "usage"]
    assert [f[0] for f in facts] == ["tool_call", "tool_result", "tool_call", "tool_result", "text"]
    assert facts[-1] == ("text", "FINAL answer")
    assert [f[1] for f in facts if f[0] == "tool_result"] == [False, True]
    call_texts = [e.text for e in kinds(events, "tool_call")]
    assert all("get_current_time(timezone=" in t for t in call_texts), call_texts
    assert "Not/AZone" in call_texts[1]
    failing = kinds(events, "tool_result")[1]
    assert failing.text.lower().startswith("error") and "Invalid timezone" in failing.text
    [session] = {e.data["session_id"] for e in kinds(events, "session")}
    assert session
    used = sum(e.data["total_tokens"] for e in kinds(events, "usage"))
    assert used == 330  # three model replies of 100 in + 10 out, as the scripted model reports them
    assert all(e.data["stream"] == "stderr" for e in kinds(events, "line"))  # every stdout line is understood


def test_claude_results_carry_cost_and_the_session_comes_from_init() -> None:
    events = parsed("claude", "tools")
    assert events[0].kind == "session" and "model" in events[0].text
    [usage] = kinds(events, "usage")
    assert usage.data["input_tokens"] == 300 and usage.data["output_tokens"] == 30
    assert usage.data["cost_usd"] > 0


def test_claude_names_a_denied_tool_as_an_error() -> None:
    errors = kinds(parsed("claude", "denied"), "error")
    assert [e.text for e in errors] == ["permission denied for: mcp__time__get_current_time"]


@pytest.mark.parametrize("runtime", ["claude", "codex", "opencode"])
def test_an_api_error_reads_as_an_error_with_the_providers_message(runtime: str) -> None:
    errors = kinds(parsed(runtime, "api-error"), "error")
    assert any("scripted failure: model unavailable" in e.text for e in errors), errors
    assert all(not e.text.startswith("{") for e in errors), errors


def test_codex_drops_its_stdin_note_and_keeps_other_stderr_lines_as_plain_lines() -> None:
    assert kinds(parsed("codex", "tools"), "line") == []  # "Reading additional input from stdin..." on every run
    adapter = runtimes.get("codex")
    [kept] = adapter.parse({"stream": "stderr", "line": "warning: something odd"})
    assert (kept.kind, kept.text, kept.data["stream"]) == ("line", "warning: something odd", "stderr")
    [warned] = adapter.parse({"stream": "stderr", "line": "2026-12-02T17:43:56.87Z  WARN codex_core::x: slow"})
    assert warned.kind == "line"


def test_codex_shows_each_command_itself_its_exit_code_and_the_tool_calls_it_refused() -> None:
    # codex-commands: real codex 0.169 with fracta's sandbox settings in a linked worktree: a patch,
    # a commit, a failing command, a patch outside the worktree and an escalation (both refused).
    events = parsed("codex", "commands")
    assert kinds(events, "line") == []
    calls = kinds(events, "tool_call")
    assert [e.data["input"] for e in calls] == [
        "git add notes.txt && git -c user.name=a -c user.email=a@x commit -q -m 'notes: hello'"
        " && git log --format=%s -1",
        "python3 -c 'raise SystemExit(3)'",
    ]
    assert calls[1].text == "shell(\"python3 -c 'raise SystemExit(3)'\")"
    changed, committed, failed = kinds(events, "tool_result")
    assert changed.text == "changed: add /home/dev/repo/.fracta/worktrees/ada/notes.txt"
    assert (committed.text, committed.data["is_error"]) == ("notes: hello", False)
    assert (failed.text, failed.data["is_error"], failed.data["exit_code"]) == ("exit 3", True, 3)
    refused = [e.text for e in kinds(events, "error") if "Model metadata" not in e.text]
    assert refused == [
        "tool call not run: patch rejected: writing outside of the project; rejected by user approval settings",
        "tool call not run: approval policy is Never; reject command — you cannot ask for escalated permissions "
        "if the approval policy is Never",
    ]


@pytest.mark.parametrize(
    ("shown", "command"),
    [
        ("/bin/bash -lc 'git merge main'", "git merge main"),
        ("/bin/bash -c \"echo 'a b' > x\"", "echo 'a b' > x"),
        ("/usr/bin/zsh -lc ls", "ls"),
        ("git status", "git status"),  # no wrapper: as it is
        ("/bin/bash -lc 'unbalanced", "/bin/bash -lc 'unbalanced"),
        ("/bin/bash -lc 'a' extra", "/bin/bash -lc 'a' extra"),
    ],
)
def test_codex_commands_lose_the_shell_wrapper_and_nothing_else(shown: str, command: str) -> None:
    from fracta.runtimes.codex import shell_command

    assert shell_command(shown) == command


def test_fracta_tools_show_without_the_mcp_prefix_and_a_refusal_is_an_error() -> None:
    events = parsed("claude", "fracta-refused")
    assert [e.text.split("(")[0] for e in kinds(events, "tool_call")] == ["fracta_send", "fracta_inbox"]
    refused = kinds(events, "tool_result")[1]
    assert refused.data["is_error"] and refused.text.startswith("error: agent 'a' may not read the inbox")


@pytest.mark.parametrize("runtime", ["claude", "codex"])
def test_a_woken_agent_keeps_one_session_across_both_runs(runtime: str) -> None:
    events = parsed(runtime, "fracta-woken")
    assert len({e.data["session_id"] for e in kinds(events, "session")}) == 1
    assert len(kinds(events, "usage")) == 2  # one per run
    assert "fracta_inbox(name=" in kinds(events, "tool_call")[-1].text


def test_opencode_repeats_the_session_on_every_step_and_tools_lose_the_server_prefix() -> None:
    events = parsed("opencode", "fracta")
    assert len(kinds(events, "session")) == 3
    assert [e.text.split("(")[0] for e in kinds(events, "tool_call")] == ["fracta_set_intent", "fracta_send"]


@pytest.mark.parametrize("runtime", ["claude", "codex", "opencode"])
def test_junk_never_raises(runtime: str) -> None:
    adapter = runtimes.get(runtime)
    junk: list[dict[str, Any]] = [
        {"line": "not json"},
        {"line": "{broken"},
        {"line": "[1, 2]"},
        {"line": "{}"},
        {"line": '{"type": "assistant", "message": null}'},
        {"line": '{"type": "item.completed", "item": {"type": "mcp_tool_call"}}'},
        {"line": '{"type": "tool_use", "part": {"state": "odd"}}'},
        {"line": '{"type": "step_finish", "part": {"tokens": {"input": "x"}}}'},
        {"line": '{"type": "result", "usage": null, "permission_denials": [1]}'},
        {"stream": "stderr", "line": '{"type": "error"}'},
    ]
    for record in junk:
        for event in adapter.parse(record):
            assert isinstance(event.text, str)
