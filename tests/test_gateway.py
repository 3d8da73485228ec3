"""The MCP gateway end to end: a real control plane, real HTTP, the official MCP client, no mocks."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2
import mcp.types as types
import pytest
from conftest import CliRunner, git
from lifecycle_helpers import cleanup, use_free_port, wait_for, wait_status
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from fracta import agents, mailbox, project
from fracta import repo as repo_mod
from fracta.control import daemon

PY = sys.executable
FRACTA_TOOLS = {
    "fracta_inbox",
    "fracta_send",
    "fracta_sent",
    "fracta_set_intent",
    "fracta_list",
    "fracta_peek",
    "fracta_tools",
}
FRACTA_TOOLS |= {"graph_query", "graph_upsert", "graph_schema"}  # the knowledge graph (fracta[graph])
FRACTA_TOOLS |= {"strategy_list", "strategy_describe", "strategy_run"}
CHESSMASTER_TOOLS = {"fracta_spawn", "fracta_merge", "fracta_kill", "fracta_say", "graph_drop"}


class Mcp:
    """The official MCP client over streamable HTTP, as one caller (a fresh session per use).
    Patient: the client's default 5 s read timeout was hit under a loaded suite by a first
    tools/list that waits for a backend (mcp-server-time) to start, or by a strategy run."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token

    def _run(self, step: Any) -> Any:
        async def main() -> Any:
            headers = {"Authorization": f"Bearer {self.token}"}
            async with (
                httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=300.0)) as client,
                streamable_http_client(self.url, http_client=client) as (read, write),
                ClientSession(read, write) as session,
            ):
                init = await session.initialize()
                return await step(session, init)

        return anyio.run(main)

    def initialize(self) -> types.InitializeResult:
        async def step(session: ClientSession, init: types.InitializeResult) -> types.InitializeResult:
            return init

        result: types.InitializeResult = self._run(step)
        return result

    def tools(self) -> list[types.Tool]:
        async def step(session: ClientSession, init: types.InitializeResult) -> list[types.Tool]:
            return (await session.list_tools()).tools

        found: list[types.Tool] = self._run(step)
        return found

    def call(self, name: str, args: dict[str, Any] | None = None) -> types.CallToolResult:
        async def step(session: ClientSession, init: types.InitializeResult) -> types.CallToolResult:
            return await session.call_tool(name, args or {})

        result: types.CallToolResult = self._run(step)
        return result

    def data(self, name: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        """The structured result of a call that must succeed; its text is the same JSON."""
        result = self.call(name, args)
        text = result.content[0].text if isinstance(result.content[0], types.TextContent) else ""
        assert not result.is_error, text
        assert result.structured_content is not None
        assert json.loads(text) == result.structured_content
        assert result.structured_content["version"] == 1
        return result.structured_content

    def refused(self, name: str, args: dict[str, Any] | None = None) -> str:
        """The error text of a call that must fail as a tool error (isError), not a protocol error."""
        result = self.call(name, args)
        assert result.is_error
        assert result.structured_content is not None and "error" in result.structured_content
        content = result.content[0]
        assert isinstance(content, types.TextContent)
        return content.text


def raw_post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=30)
    try:
        conn.request("POST", parts.path, body=body, headers={"Content-Type": "application/json", **headers})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


INITIALIZE = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
).encode()
ACCEPT = {"Accept": "application/json, text/event-stream"}


@pytest.fixture
def fr(initialized: repo_mod.Repo, monkeypatch: pytest.MonkeyPatch) -> repo_mod.Repo:
    """An initialized repo whose control plane and gateway use free ports, with fracta's CLI on PATH."""
    use_free_port(initialized)
    monkeypatch.setenv("PATH", f"{Path(PY).parent}{os.pathsep}{os.environ['PATH']}")
    return initialized


@pytest.fixture
def gateway(fr: repo_mod.Repo, cli: CliRunner) -> Iterator[str]:
    """The running control plane's gateway URL (from control.json)."""
    with cleanup(fr):
        up = cli("up")
        assert up.returncode == 0, up.stderr
        info = daemon.read_info(fr)
        assert info is not None and info.gateway_url is not None
        yield info.gateway_url


def chessmaster(fr: repo_mod.Repo, url: str) -> Mcp:
    return Mcp(url, fr.token_path.read_text().strip())


def agent(fr: repo_mod.Repo, url: str, name: str) -> Mcp:
    return Mcp(url, project.agent_token(fr, name))


def test_control_json_records_the_gateway_url_and_join_prints_it(
    fr: repo_mod.Repo, cli: CliRunner, gateway: str
) -> None:
    info = daemon.read_info(fr)
    assert info is not None
    assert gateway.startswith("http://127.0.0.1:") and gateway.endswith("/mcp")
    assert urlsplit(gateway).port != urlsplit(info.url).port
    joined = cli("join", "helper")
    assert joined.returncode == 0, joined.stderr
    assert f"export FRACTA_GATEWAY_URL={gateway}" in joined.stdout.splitlines()


def test_every_tool_works_for_the_chessmaster(fr: repo_mod.Repo, cli: CliRunner, gateway: str) -> None:
    boss = chessmaster(fr, gateway)
    assert "start of every iteration" in (boss.initialize().instructions or "")
    listed = {t.name: t for t in boss.tools()}
    assert set(listed) == FRACTA_TOOLS | CHESSMASTER_TOOLS
    inbox_help = listed["fracta_inbox"].description or ""
    assert "start of every iteration" in inbox_help and "after every commit" in inbox_help
    send = listed["fracta_send"].input_schema
    assert (send["required"], "from" in send["properties"]) == (["to", "message"], True)  # from: default the caller

    job = "echo hello from $FRACTA_AGENT; echo w > w.txt; git add w.txt; git commit -qm 'worker: w.txt'"
    spawned = boss.data("fracta_spawn", {"name": "worker", "args": ["sh", "-c", job]})
    assert spawned["agent"]["name"] == "worker" and spawned["agent"]["branch"] == "feature/worker"
    wait_status(fr, "worker", "done")

    everyone = boss.data("fracta_list")
    assert [a["name"] for a in everyone["agents"]] == ["worker"]
    peeked = boss.data("fracta_peek", {"name": "worker"})
    assert "hello from worker" in [e["text"] for e in peeked["events"]]

    said = boss.data("fracta_say", {"to": "worker", "message": "well done"})
    assert [(m["from"], m["to"]) for m in said["sent"]] == [("chessmaster", "worker")]
    sent = boss.data("fracta_send", {"from": "chessmaster", "to": "worker", "message": "one more"})
    assert sent["sent"][0]["body"] == "one more"
    inbox = boss.data("fracta_inbox", {"name": "worker"})
    assert [m["body"] for m in inbox["messages"]] == ["well done", "one more"]
    assert boss.data("fracta_inbox", {"name": "worker"})["messages"] == []
    followed = boss.data("fracta_sent", {"name": "chessmaster"})["messages"]
    assert [(m["to"], m["state"]) for m in followed] == [("worker", "handed"), ("worker", "handed")]
    intent = boss.data("fracta_set_intent", {"name": "worker", "intent": "wrapping up"})
    assert intent == {"version": 1, "agent": "worker", "intent": "wrapping up"}

    merged = boss.data("fracta_merge", {"name": "worker"})
    assert merged["branch"] == "feature/worker" and merged["into"] == "main"
    assert (fr.root / "w.txt").read_text() == "w\n"
    assert git(fr.root, "log", "-1", "--format=%H") == merged["sha"]

    killed = boss.data("fracta_kill", {"name": "worker"})
    assert killed["agent"] == "worker" and killed["saved"] is None
    assert not agents.exists(fr, "worker")

    found = boss.data("fracta_tools")
    assert {t["name"] for t in found["tools"]} == FRACTA_TOOLS | CHESSMASTER_TOOLS
    assert all(t["source"] == "fracta" and t["description"] for t in found["tools"])


def test_core_errors_come_back_as_tool_errors_with_a_hint(fr: repo_mod.Repo, gateway: str) -> None:
    boss = chessmaster(fr, gateway)
    missing = boss.refused("fracta_kill", {"name": "ghost"})
    assert "no agent named 'ghost'" in missing and "hint: run fracta list" in missing
    assert "does not take 'extra'" in boss.refused("fracta_list", {"extra": 1})
    assert "needs the argument 'message'" in boss.refused("fracta_say", {"to": "chessmaster"})
    assert "must be a string" in boss.refused("fracta_inbox", {"name": 7})
    assert "no tool named 'nope'" in boss.refused("nope")
    result = boss.call("fracta_spawn", {"name": "Bad/Name", "args": ["true"]})
    assert result.is_error and result.structured_content is not None
    assert result.structured_content["error"]["type"] == "InvalidName"


def test_an_agent_acts_only_as_itself(fr: repo_mod.Repo, cli: CliRunner, gateway: str) -> None:
    for name in ("alpha", "beta"):
        assert cli("join", name).returncode == 0
    mailbox.send(fr, "chessmaster", "beta", "for beta only")
    alpha = agent(fr, gateway, "alpha")

    assert "may not read the inbox as or for 'beta'" in alpha.refused("fracta_inbox", {"name": "beta"})
    assert "may not send messages as or for 'beta'" in alpha.refused(
        "fracta_send", {"from": "beta", "to": "alpha", "message": "forged"}
    )
    assert "may not send messages as or for 'chessmaster'" in alpha.refused(
        "fracta_send", {"from": "chessmaster", "to": "beta", "message": "forged"}
    )
    assert "may not set the intent as or for 'beta'" in alpha.refused(
        "fracta_set_intent", {"name": "beta", "intent": "hijacked"}
    )
    for tool, args in (
        ("fracta_spawn", {"name": "rogue", "args": ["true"]}),
        ("fracta_merge", {"name": "beta"}),
        ("fracta_kill", {"name": "beta"}),
        ("fracta_say", {"to": "beta", "message": "as the boss"}),
    ):
        text = alpha.refused(tool, args)
        assert f"agent 'alpha' may not use {tool}" in text and "only the chessmaster" in text

    # Nothing was read, sent, changed, spawned or killed by the refused calls.
    assert mailbox.unread_count(fr, "beta") == 1
    assert mailbox.unread_count(fr, "alpha") == 0
    assert agents.load(fr, "beta").intent == ""
    assert not agents.exists(fr, "rogue") and agents.exists(fr, "beta")

    # What an agent may do for itself works.
    alpha.data("fracta_send", {"from": "alpha", "to": "beta", "message": "hi beta"})
    assert alpha.data("fracta_set_intent", {"name": "alpha", "intent": "reviewing"})["intent"] == "reviewing"
    assert alpha.data("fracta_inbox", {"name": "alpha"})["messages"] == []
    beta = agent(fr, gateway, "beta")
    assert [m["body"] for m in beta.data("fracta_inbox", {"name": "beta"})["messages"]] == ["for beta only", "hi beta"]
    assert {a["name"] for a in alpha.data("fracta_list")["agents"]} == {"alpha", "beta"}


def test_discovery_lists_what_each_identity_may_use(fr: repo_mod.Repo, cli: CliRunner, gateway: str) -> None:
    assert cli("join", "alpha").returncode == 0
    alpha = agent(fr, gateway, "alpha")
    tools = {t.name: t for t in alpha.tools()}
    assert set(tools) == FRACTA_TOOLS
    assert "You are 'alpha'." in (tools["fracta_inbox"].description or "")
    found = alpha.data("fracta_tools")
    assert {t["name"] for t in found["tools"]} == FRACTA_TOOLS
    assert alpha.data("fracta_tools", {"query": "spawn"})["tools"] == []
    inbox = alpha.data("fracta_tools", {"query": "INBOX rhythm"})
    assert inbox["tools"][0]["name"] == "fracta_inbox"
    assert inbox["tools"][0]["input_schema"]["required"] == ["name"]
    boss = chessmaster(fr, gateway)
    assert next(t["name"] for t in boss.data("fracta_tools", {"query": "merge"})["tools"]) == "fracta_merge"


def test_requests_without_a_valid_token_get_401_before_mcp(fr: repo_mod.Repo, gateway: str) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic abc"}):
        status, body = raw_post(gateway, INITIALIZE, {**ACCEPT, **headers})
        assert status == 401
        error = json.loads(body)["error"]
        assert error["message"] == "missing or unknown token" and "Bearer" in error["hint"]
    status, body = raw_post(
        gateway, INITIALIZE, {**ACCEPT, "Authorization": f"Bearer {fr.token_path.read_text().strip()}"}
    )
    assert status == 200
    assert json.loads(body)["result"]["serverInfo"]["name"] == "fracta"  # one JSON body, no event stream


def test_a_killed_agents_token_is_refused(fr: repo_mod.Repo, cli: CliRunner, gateway: str) -> None:
    boss = chessmaster(fr, gateway)
    boss.data("fracta_spawn", {"name": "shortlived", "args": ["true"]})
    wait_status(fr, "shortlived", "done")
    token = project.agent_token(fr, "shortlived")
    itself = Mcp(gateway, token)
    assert itself.data("fracta_inbox", {"name": "shortlived"})["messages"] == []
    assert itself.data("fracta_peek", {"name": "shortlived"})["status"] == "done"  # agents may peek
    boss.data("fracta_kill", {"name": "shortlived"})
    status, _ = raw_post(gateway, INITIALIZE, {**ACCEPT, "Authorization": f"Bearer {token}"})
    assert status == 401


def test_the_mcp_endpoint_refuses_rebinding_hosts_and_large_bodies(fr: repo_mod.Repo, gateway: str) -> None:
    auth = {**ACCEPT, "Authorization": f"Bearer {fr.token_path.read_text().strip()}"}
    assert raw_post(gateway, INITIALIZE, {**auth, "Host": "attacker.example:80"})[0] == 421
    assert raw_post(gateway, INITIALIZE, {**auth, "Origin": "http://attacker.example"})[0] == 403
    assert raw_post(gateway, INITIALIZE, {**auth, "Host": f"localhost:{urlsplit(gateway).port}"})[0] == 200
    assert raw_post(gateway, b"[" * (2 * 1024 * 1024), auth)[0] == 413


def test_the_rest_api_refuses_large_bodies(fr: repo_mod.Repo, gateway: str) -> None:
    info = daemon.read_info(fr)
    assert info is not None
    auth = {"Authorization": f"Bearer {fr.token_path.read_text().strip()}"}
    status, body = raw_post(info.url + "/v1/messages", b" " * (2 * 1024 * 1024), auth)
    assert status == 413
    assert "limit of 1048576 bytes" in json.loads(body)["error"]["message"]
    status, _ = raw_post(info.url + "/v1/messages", b"{}", {})
    assert status == 401


def read_sse(response: http.client.HTTPResponse, count: int) -> list[dict[str, str]]:
    """The next `count` events of a text/event-stream response (comments and retry lines skipped)."""
    found: list[dict[str, str]] = []
    event: dict[str, str] = {}
    while len(found) < count:
        line = response.readline().decode().rstrip("\n")
        if line == "":
            if "data" in event:
                found.append(event)
            event = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(": ")
            event[key] = value
    return found


def open_stream(url: str, token: str, **headers: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=60)
    conn.request(
        "GET", "/v1/events", headers={"Authorization": f"Bearer {token}", "Accept": "text/event-stream", **headers}
    )
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("content-type", "").startswith("text/event-stream")
    return conn, response


def test_events_stream_live_as_server_sent_events_and_resume(fr: repo_mod.Repo, gateway: str) -> None:
    info = daemon.read_info(fr)
    assert info is not None
    token = fr.token_path.read_text().strip()
    conn, stream = open_stream(info.url, token)
    try:
        first = read_sse(stream, 1)[0]
        assert first["event"] == "fracta.initialized"
        assert json.loads(first["data"])["offset"] == 0
        # A message sent now arrives on the open stream.
        mailbox.send(fr, "chessmaster", "chessmaster", "live")
        while True:
            event = read_sse(stream, 1)[0]
            if event["event"] == "message.sent":
                break
        live = json.loads(event["data"])
        assert live["to"] == "chessmaster" and int(event["id"]) > live["offset"]
    finally:
        conn.close()
    # Reconnecting with Last-Event-ID resumes right after that event (and wins over ?since=).
    mailbox.send(fr, "chessmaster", "chessmaster", "while away")
    conn, stream = open_stream(info.url + "?since=0", token, **{"Last-Event-ID": event["id"]})
    try:
        resumed = read_sse(stream, 1)[0]
        assert json.loads(resumed["data"])["offset"] == int(event["id"])
        assert resumed["event"] == "message.sent"
    finally:
        conn.close()
    # The JSON form stays the default.
    parts = urlsplit(info.url)
    plain = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=30)
    plain.request("GET", "/v1/events?limit=1", headers={"Authorization": f"Bearer {token}"})
    page = json.loads(plain.getresponse().read())
    plain.close()
    assert page["events"][0]["event"] == "fracta.initialized" and page["next"] > 0


def test_the_control_plane_stops_promptly_with_an_event_stream_open(fr: repo_mod.Repo, gateway: str) -> None:
    info = daemon.read_info(fr)
    assert info is not None
    conn, stream = open_stream(info.url, fr.token_path.read_text().strip())
    try:
        read_sse(stream, 1)
        os.kill(info.pid, signal.SIGTERM)
        # The stream ends cleanly (an incomplete read would raise) and the process exits on its own.
        assert stream.read() is not None
        wait_for("the control plane to exit", lambda: daemon.read_info(fr) is None)
    finally:
        conn.close()


def test_connections_to_fractas_listening_sockets_have_nagle_off() -> None:
    """uvicorn serves the sockets fracta binds; asyncio turns Nagle off only on TCP-protocol sockets.
    With it on, a reply written in two parts on a kept-alive connection waits ~40 ms for an ACK."""
    import asyncio
    import socket

    from fracta.control import server as control_server

    listening = control_server.listen("127.0.0.1", 0, "gateway")
    seen: list[int] = []

    class Noted(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            seen.append(transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    async def connect() -> None:
        server = await asyncio.get_running_loop().create_server(Noted, sock=listening)  # as uvicorn does
        async with server:
            _, writer = await asyncio.open_connection(*listening.getsockname())
            async with asyncio.timeout(30):
                while not seen:
                    await asyncio.sleep(0.01)
            writer.close()

    asyncio.run(connect())
    assert seen[0] != 0


def test_fracta_gateway_runs_alone_and_warns_off_loopback(fr: repo_mod.Repo) -> None:
    proc = subprocess.Popen(
        [PY, "-m", "fracta", "gateway", "--host", "0.0.0.0", "--port", "0"],
        cwd=fr.root,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines: list[str] = []

        def listening() -> str | None:
            assert proc.stderr is not None
            line = proc.stderr.readline()
            lines.append(line)
            return line if "gateway listening" in line else None

        line = str(wait_for("the gateway to listen", listening))
        port = int(line.split("url=http://0.0.0.0:")[1].split("/")[0])
        assert any("non-loopback" in seen for seen in lines), lines
        url = f"http://127.0.0.1:{port}/mcp"
        boss = chessmaster(fr, url)
        assert boss.data("fracta_say", {"to": "chessmaster", "message": "standalone"})["sent"]
        assert "fracta_spawn" in {t.name for t in boss.tools()}
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        assert proc.stderr is not None
        proc.stderr.close()
    assert code == 0


def test_proxied_backend_tools_are_listed_and_called(fr: repo_mod.Repo, cli: CliRunner) -> None:
    pytest.importorskip("fracta.gateway.proxy")
    time_server = Path(PY).parent / "mcp-server-time"
    if not time_server.exists():
        pytest.skip("mcp-server-time is not installed")
    use_free_port(fr, f"mcp_servers:\n  time:\n    command: {time_server}\n    args: [--local-timezone, UTC]\n")
    with cleanup(fr):
        assert cli("up").returncode == 0
        assert cli("join", "alpha").returncode == 0
        info = daemon.read_info(fr)
        assert info is not None and info.gateway_url is not None
        alpha = agent(fr, info.gateway_url, "alpha")
        assert "time__get_current_time" in {t.name for t in alpha.tools()}
        found = alpha.data("fracta_tools", {"query": "time"})["tools"]
        proxied = [t for t in found if t["name"] == "time__get_current_time"]
        assert proxied and proxied[0]["source"] == "time" and proxied[0]["description"]
        result = alpha.call("time__get_current_time", {"timezone": "UTC"})
        assert not result.is_error
        assert "UTC" in json.dumps([c.model_dump() for c in result.content])


def test_sends_retried_through_mcp_are_stored_once_by_key_or_as_the_identical_call(
    fr: repo_mod.Repo, cli: CliRunner, gateway: str
) -> None:
    for name in ("api", "ui"):
        assert cli("join", name).returncode == 0
    api, boss = agent(fr, gateway, "api"), chessmaster(fr, gateway)
    send_help = next(t for t in api.tools() if t.name == "fracta_send").description or ""
    assert "identical call" in send_help and "10 minutes" in send_help and "idempotency_key" in send_help
    first = api.data("fracta_send", {"from": "api", "to": "ui", "message": "schema is ready"})
    retry = api.data("fracta_send", {"from": "api", "to": "ui", "message": "schema is ready"})
    assert first["duplicates"] == [] and retry["duplicates"] == [first["sent"][0]["id"]] == [retry["sent"][0]["id"]]
    keyed = {"from": "api", "to": "ui", "message": "schema is ready", "idempotency_key": "schema-v2"}
    second = api.data("fracta_send", keyed)  # the same text under a key of its own: a new message
    assert second["duplicates"] == [] and api.data("fracta_send", keyed)["duplicates"] == [second["sent"][0]["id"]]
    refused = api.refused("fracta_send", keyed | {"message": "another text"})
    assert "already used for another message" in refused and "hint:" in refused
    said = [boss.data("fracta_say", {"to": "ui", "message": "stand-up at 10"}) for _ in range(2)]
    assert said[1]["duplicates"] == [said[0]["sent"][0]["id"]]
    stored = sorted(os.listdir(fr.inbox_dir("ui") / "new"))
    assert stored == sorted([first["sent"][0]["id"], second["sent"][0]["id"], said[0]["sent"][0]["id"]])


def test_an_mcp_read_is_held_until_acknowledged_and_a_repeated_call_gets_it_again(
    fr: repo_mod.Repo, cli: CliRunner, gateway: str
) -> None:
    assert cli("join", "api").returncode == 0
    api = agent(fr, gateway, "api")
    inbox_help = next(t for t in api.tools() if t.name == "fracta_inbox").description or ""
    assert "receipt" in inbox_help and "`ack`" in inbox_help
    first = api.data("fracta_inbox", {"name": "api"})
    assert first["messages"] == []
    mailbox.send(fr, "chessmaster", "api", "rebase on main")
    got = api.data("fracta_inbox", {"name": "api", "ack": first["receipt"]})
    assert [m["body"] for m in got["messages"]] == ["rebase on main"]
    assert os.listdir(fr.inbox_dir("api") / "cur") == []  # handed out, not yet acknowledged
    # As if that result had been lost: the identical call gets the same messages, under the same receipt.
    again = api.data("fracta_inbox", {"name": "api", "ack": first["receipt"]})
    assert again["messages"] == got["messages"]
    done = api.data("fracta_inbox", {"name": "api", "ack": got["receipt"]})
    assert done["messages"] == [] and os.listdir(fr.inbox_dir("api") / "pending") == []
    assert [m["id"] for m in got["messages"]] == os.listdir(fr.inbox_dir("api") / "cur")
    assert "not a receipt" in api.refused("fracta_inbox", {"name": "api", "ack": "yesterday"})


def test_the_rest_api_stores_a_keyed_send_once_and_acknowledges_reads(fr: repo_mod.Repo, gateway: str) -> None:
    info = daemon.read_info(fr)
    assert info is not None
    project.join(fr, "api")
    auth = {"Authorization": f"Bearer {fr.token_path.read_text().strip()}"}
    body = json.dumps({"to": "api", "message": "ship it"}).encode()
    answers = [raw_post(info.url + "/v1/messages", body, auth | {"Idempotency-Key": "ship-1"}) for _ in range(2)]
    assert [status for status, _ in answers] == [201, 201]
    [first, again] = [json.loads(raw) for _, raw in answers]
    assert again["duplicates"] == [first["sent"][0]["id"]]
    both = json.dumps({"to": "api", "message": "ship it", "idempotency_key": "other"}).encode()
    status, raw = raw_post(info.url + "/v1/messages", both, auth | {"Idempotency-Key": "ship-1"})
    assert status == 422 and "differ" in json.loads(raw)["error"]["message"]
    api_auth = {"Authorization": f"Bearer {project.agent_token(fr, 'api')}"}
    status, raw = raw_post(info.url + "/v1/agents/api/inbox", b"{}", api_auth)
    read = json.loads(raw)
    assert status == 200 and [m["body"] for m in read["messages"]] == ["ship it"]
    ack = json.dumps({"receipt": read["receipt"]}).encode()
    status, raw = raw_post(info.url + "/v1/agents/api/inbox/ack", ack, api_auth)
    assert status == 200 and json.loads(raw) == {"version": 1, "agent": "api", "acknowledged": 1}
    assert os.listdir(fr.inbox_dir("api") / "cur") == [first["sent"][0]["id"]]
    project.join(fr, "ui")
    ui_auth = {"Authorization": f"Bearer {project.agent_token(fr, 'ui')}"}
    status, raw = raw_post(info.url + "/v1/agents/api/inbox/ack", ack, ui_auth)  # only api acknowledges api's
    assert status == 403 and "may not acknowledge messages" in json.loads(raw)["error"]["message"]
