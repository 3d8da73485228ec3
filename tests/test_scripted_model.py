"""The scripted model server, alone and driving the real AI CLIs by hand (no fracta adapter).

The CLI tests configure the real third-party `mcp-server-time` over stdio and check the side
effects: the CLI really called the tool (its result reached the model in the next request) and the
scripted final text came back on the CLI's JSON output.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import ai_clis
import pytest
from ai_clis import Finished, McpServer, claude_by_hand, codex_by_hand, opencode_by_hand, time_mcp
from scripted_model import Agent, ScriptedModel, Step, call, fail, say
from scripted_model.script import Conversation, Tool, ToolResult, next_reply

PARIS = call("get_current_time", timezone="Europe/Paris")
TOKYO = call("get_current_time", timezone="Asia/Tokyo")


# --- the server alone ----------------------------------------------------------------------------


def post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"content-type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def sse(text: str) -> list[tuple[str | None, Any]]:
    """(event name, parsed data) for each SSE message; `[DONE]` stays a string."""
    found = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        data = fields["data"]
        found.append((fields.get("event"), data if data == "[DONE]" else json.loads(data)))
    return found


def anthropic_body(*messages: dict[str, Any], tools: tuple[str, ...] = ("mcp__fracta__fracta_send",)) -> dict[str, Any]:
    return {
        "model": "claude-test",
        "stream": True,
        "tools": [{"name": t, "input_schema": {}} for t in tools],
        "messages": list(messages) or [{"role": "user", "content": "go"}],
    }


def test_a_claude_tool_call_streams_as_a_tool_use_block_with_the_exposed_name(scripted_model: ScriptedModel) -> None:
    agent = scripted_model.agent("a", [call("fracta_send", to="b", body="hi")])
    status, text = post(agent.base_url + "/v1/messages?beta=true", anthropic_body(), {"x-api-key": "sk-1"})
    assert status == 200
    events = sse(text)
    assert [e for e, _ in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[1][1]["content_block"]["name"] == "mcp__fracta__fracta_send"
    assert json.loads(events[2][1]["delta"]["partial_json"]) == {"to": "b", "body": "hi"}
    assert events[4][1]["delta"]["stop_reason"] == "tool_use"
    assert agent.credentials() == {"sk-1"}
    assert agent.tool_calls() == [("mcp__fracta__fracta_send", {"to": "b", "body": "hi"})]


def test_a_codex_tool_call_carries_the_namespace_of_the_mcp_server(scripted_model: ScriptedModel) -> None:
    agent = scripted_model.agent("c", [call("fracta_set_intent", intent="x")])
    namespace = {
        "type": "namespace",
        "name": "mcp__fracta",
        "tools": [{"type": "function", "name": "fracta_set_intent"}],
    }
    body = {
        "model": "m",
        "stream": True,
        "input": "go",
        "tools": [{"type": "function", "name": "exec_command"}, namespace],
    }
    status, text = post(agent.openai_base_url + "/responses", body, {"authorization": "Bearer tok-c"})
    assert status == 200
    events = sse(text)
    assert events[0][0] == "response.created" and events[-1][0] == "response.completed"
    item = next(d["item"] for e, d in events if e == "response.output_item.done")
    assert item["type"] == "function_call"
    assert (item["namespace"], item["name"], json.loads(item["arguments"])) == (
        "mcp__fracta",
        "fracta_set_intent",
        {"intent": "x"},
    )
    assert events[-1][1]["response"]["usage"]["input_tokens"] == 100
    assert agent.credentials() == {"tok-c"}


def test_an_opencode_tool_call_is_a_chat_delta_ending_with_done(scripted_model: ScriptedModel) -> None:
    agent = scripted_model.agent("o", [call("fracta_inbox")])
    tools = [{"type": "function", "function": {"name": n}} for n in ("bash", "fracta_fracta_inbox")]
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "go"}], "tools": tools}
    status, text = post(agent.openai_base_url + "/chat/completions", body)
    assert status == 200
    events = sse(text)
    assert events[-1] == (None, "[DONE]")
    tool_call = events[0][1]["choices"][0]["delta"]["tool_calls"][0]
    assert tool_call["function"]["name"] == "fracta_fracta_inbox"
    assert events[1][1]["choices"][0]["finish_reason"] == "tool_calls"


def test_a_request_offering_no_tools_gets_plain_text_and_does_not_advance_the_script(
    scripted_model: ScriptedModel,
) -> None:
    agent = scripted_model.agent("o", [say("the real answer")])
    status, text = post(agent.openai_base_url + "/chat/completions", {"model": "m", "stream": False, "messages": []})
    assert status == 200
    assert json.loads(text)["choices"][0]["message"]["content"] == agent.side_text
    assert agent.tool_calls() == [] and scripted_model.errors == []


def test_agents_are_told_apart_by_path_and_default_takes_the_rest(scripted_model: ScriptedModel) -> None:
    a = scripted_model.agent("a", [say("from a")])
    b = scripted_model.agent("b", [say("from b")])
    for agent, key in ((a, "key-a"), (b, "key-b")):
        status, text = post(agent.base_url + "/v1/messages", {**anthropic_body(), "stream": False}, {"x-api-key": key})
        assert status == 200 and json.loads(text)["content"][0]["text"] == f"from {agent.name}"
    post(scripted_model.url + "/v1/messages", anthropic_body())
    assert (a.credentials(), b.credentials()) == ({"key-a"}, {"key-b"})
    assert len(scripted_model.agent("default").requests) == 1


def test_count_tokens_and_head_are_answered(scripted_model: ScriptedModel) -> None:
    agent = scripted_model.agent("a")
    status, text = post(agent.base_url + "/v1/messages/count_tokens", anthropic_body())
    assert status == 200 and json.loads(text)["input_tokens"] > 0
    with urllib.request.urlopen(urllib.request.Request(agent.base_url + "/", method="HEAD"), timeout=10) as response:
        assert response.status == 200


def test_a_step_naming_no_offered_tool_is_an_error_the_test_can_see(scripted_model: ScriptedModel) -> None:
    agent = scripted_model.agent("a", [call("fracta_send")])
    status, text = post(agent.base_url + "/v1/messages", anthropic_body(tools=("Bash", "mcp__time__get_current_time")))
    assert status == 200 and "no offered tool matches 'fracta_send'" in text
    assert len(scripted_model.errors) == 1 and "mcp__time__get_current_time" in scripted_model.errors[0]


def test_a_fail_step_answers_an_http_error_and_an_unknown_path_a_404(scripted_model: ScriptedModel) -> None:
    agent = scripted_model.agent("a", [fail(400, "bad key")])
    status, text = post(agent.base_url + "/v1/messages", anthropic_body())
    assert (status, json.loads(text)["error"]["message"]) == (400, "bad key")
    assert post(agent.base_url + "/v1/embeddings", {})[0] == 404
    assert any("/v1/embeddings" in e for e in scripted_model.errors)


def test_while_claude_still_connects_its_mcp_servers_the_script_waits_for_them_without_losing_a_step(
    scripted_model: ScriptedModel,
) -> None:
    agent = scripted_model.agent("a", [call("fracta_send", to="b"), say("sent")])
    status, text = post(agent.base_url + "/v1/messages", anthropic_body(tools=("Bash", "WaitForMcpServers")))
    waiting = sse(text)[1][1]["content_block"]
    assert (status, waiting["name"]) == (200, "WaitForMcpServers")
    asked = {"role": "assistant", "content": [{"type": "tool_use", "id": waiting["id"], "name": waiting["name"]}]}
    ready = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": waiting["id"], "content": "ready"}]}
    body = anthropic_body(
        {"role": "user", "content": "go"}, asked, ready, tools=("WaitForMcpServers", "mcp__f__fracta_send")
    )
    assert sse(post(agent.base_url + "/v1/messages", body)[1])[1][1]["content_block"]["name"] == "mcp__f__fracta_send"
    assert agent.tool_calls() == [("mcp__f__fracta_send", {"to": "b"})]
    assert agent.tool_results() == [] and scripted_model.errors == []


def conversation(results: int, answers: int) -> Conversation:
    done = [ToolResult(f"c{i}", "ok") for i in range(results)]
    return Conversation("m", True, [Tool("mcp__time__get_current_time")], done, answers, ["go"])


def test_the_step_is_chosen_from_tool_results_and_final_answers_so_a_resumed_session_continues() -> None:
    steps: list[Step] = [PARIS, say("first"), TOKYO, say("second")]
    picked = [next_reply(steps, conversation(r, a), "", "id") for r, a in ((0, 0), (1, 0), (1, 1), (2, 1))]
    assert [p.text or json.loads(p.arguments)["timezone"] for p in picked] == [
        "Europe/Paris",
        "first",
        "Asia/Tokyo",
        "second",
    ]
    assert "script finished" in (next_reply(steps, conversation(2, 2), "", "id").text or "")


def test_a_missing_cli_skips_loudly_and_fails_under_ci_when_npm_could_have_installed_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ai_clis, "CLI_BIN", tmp_path / "nowhere")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="AI CLIs not installed: run scripts/setup-ai-clis"):
        ai_clis.require_cli("claude")
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.skip.Exception):
        ai_clis.require_cli("codex")  # no npm: still a skip
    (tmp_path / "npm").write_text("#!/bin/sh\n")
    (tmp_path / "npm").chmod(0o755)
    with pytest.raises(pytest.fail.Exception, match="CI has npm"):
        ai_clis.require_cli("opencode")


# --- the real CLIs, by hand ----------------------------------------------------------------------


def time_result_reached_the_model(agent: Agent, zone: str) -> None:
    results = [r for r in agent.results_of("get_current_time") if zone in r.text and "datetime" in r.text]
    assert results and not results[0].is_error, agent.tool_results()


def show(run: Finished) -> str:
    return f"exit {run.returncode}\nstdout:\n{run.stdout[-4000:]}\nstderr:\n{run.stderr[-4000:]}"


def claude_result(run: Finished) -> tuple[str | None, str | None]:
    """(session id, final text) from Claude's stream-json output."""
    session = next((e.get("session_id") for e in run.events if e.get("type") == "system"), None)
    result = next((e.get("result") for e in run.events if e.get("type") == "result"), None)
    return session, result


def test_claude_calls_a_real_mcp_tool_and_resumes_its_session_where_the_script_left_off(
    claude_bin: Path, scripted_model: ScriptedModel, tmp_path: Path
) -> None:
    agent = scripted_model.agent("claude", [PARIS, say("Paris done."), TOKYO, say("Tokyo done.")])
    first = claude_by_hand(agent, "What time is it in Paris?", tmp_path, tmp_path / "run", [time_mcp()]).run()
    session, text = claude_result(first)
    assert text == "Paris done.", show(first)
    time_result_reached_the_model(agent, "Europe/Paris")
    assert agent.tool_calls() == [("mcp__time__get_current_time", {"timezone": "Europe/Paris"})]
    assert agent.credentials() == {"sk-ant-test"}
    assert session

    resumed = claude_by_hand(
        agent,
        "And in Tokyo?",
        tmp_path,
        tmp_path / "run",
        [time_mcp()],
        api_key=None,
        auth_token="tok-bearer",
        extra=("--resume", session),
    ).run()
    assert claude_result(resumed) == (session, "Tokyo done."), show(resumed)
    time_result_reached_the_model(agent, "Asia/Tokyo")
    assert agent.credentials() == {"sk-ant-test", "tok-bearer"}
    assert scripted_model.errors == []


def test_claude_without_allowed_tools_is_denied_and_the_denial_reaches_the_model(
    claude_bin: Path, scripted_model: ScriptedModel, tmp_path: Path
) -> None:
    agent = scripted_model.agent("claude", [PARIS, say("done")])
    run = claude_by_hand(agent, "time?", tmp_path, tmp_path / "run", [time_mcp()], allowed_tools=[]).run()
    result = next(e for e in run.events if e.get("type") == "result")
    assert result["permission_denials"], show(run)
    assert [r.is_error for r in agent.tool_results()] == [True]
    assert "datetime" not in agent.tool_results()[0].text


def test_claude_connecting_its_mcp_servers_in_the_background_still_runs_the_whole_script(
    claude_bin: Path, scripted_model: ScriptedModel, tmp_path: Path
) -> None:
    agent = scripted_model.agent("claude", [PARIS, say("done")])
    late = McpServer("time", ["sh", "-c", 'sleep 2; exec "$0" "$@"', *time_mcp().command])
    nonblocking = {"MCP_CONNECTION_NONBLOCKING": "1"}  # Claude Code's default; claude_env() turns it off
    run = claude_by_hand(agent, "time?", tmp_path, tmp_path / "run", [late], env=nonblocking).run()
    assert claude_result(run)[1] == "done", show(run)
    time_result_reached_the_model(agent, "Europe/Paris")
    assert scripted_model.errors == []


def codex_result(run: Finished) -> tuple[str | None, list[str]]:
    """(thread id, agent messages) from `codex exec --json` output."""
    thread = next((e.get("thread_id") for e in run.events if e.get("type") == "thread.started"), None)
    items = [e["item"] for e in run.events if e.get("type") == "item.completed"]
    return thread, [i["text"] for i in items if i.get("type") == "agent_message"]


def test_codex_calls_a_real_mcp_tool_through_its_namespace_and_resumes(
    codex_bin: Path, scripted_model: ScriptedModel, tmp_path: Path
) -> None:
    agent = scripted_model.agent("codex", [PARIS, say("Paris done."), TOKYO, say("Tokyo done.")])
    first = codex_by_hand(agent, "What time is it in Paris?", tmp_path, tmp_path / "run", [time_mcp()]).run()
    thread, texts = codex_result(first)
    assert texts == ["Paris done."], show(first)
    time_result_reached_the_model(agent, "Europe/Paris")
    assert agent.tool_calls() == [("mcp__time__get_current_time", {"timezone": "Europe/Paris"})]
    assert agent.credentials() == {"sk-codex-test"}
    assert thread

    resumed = codex_by_hand(
        agent, "And in Tokyo?", tmp_path, tmp_path / "run", [time_mcp()], extra=("resume", thread)
    ).run()
    assert codex_result(resumed) == (thread, ["Tokyo done."]), show(resumed)
    time_result_reached_the_model(agent, "Asia/Tokyo")
    assert scripted_model.errors == []


def opencode_result(run: Finished) -> tuple[str | None, list[str]]:
    """(session id, texts) from `opencode run --format json` output."""
    session = next((e.get("sessionID") for e in run.events if e.get("sessionID")), None)
    return session, [e["part"]["text"] for e in run.events if e.get("type") == "text"]


def test_opencode_calls_a_real_mcp_tool_and_continues_its_session(
    opencode_bin: Path, scripted_model: ScriptedModel, tmp_path: Path
) -> None:
    agent = scripted_model.agent("opencode", [PARIS, say("Paris done."), TOKYO, say("Tokyo done.")])
    first = opencode_by_hand(agent, "What time is it in Paris?", tmp_path, tmp_path / "run", [time_mcp()]).run()
    session, texts = opencode_result(first)
    assert texts == ["Paris done."], show(first)
    time_result_reached_the_model(agent, "Europe/Paris")
    assert agent.tool_calls() == [("time_get_current_time", {"timezone": "Europe/Paris"})]
    assert agent.credentials() == {"sk-opencode-test"}
    assert session

    resumed = opencode_by_hand(
        agent,
        "And in Tokyo?",
        tmp_path,
        tmp_path / "run2",
        [time_mcp()],
        extra=("--session", session),
        env={"HOME": str(tmp_path / "run" / "home")},
    ).run()
    assert opencode_result(resumed) == (session, ["Tokyo done."]), show(resumed)
    time_result_reached_the_model(agent, "Asia/Tokyo")
    assert scripted_model.errors == []
