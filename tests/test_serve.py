"""`fracta serve` driven over stdio by the official MCP client, against the real control plane and gateway."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import mcp.client.session as mcp_session
import mcp.types as types
import psutil
import pytest
from conftest import CliRunner
from lifecycle_helpers import cleanup, kill_control_plane_hard, use_free_port, wait_for
from mcp import Client, ClientSession, StdioServerParameters, stdio_client
from mcp.types.version import HANDSHAKE_PROTOCOL_VERSIONS

from fracta import agents, atomic, processes
from fracta import repo as repo_mod
from fracta.control import daemon

CHESSMASTER_ONLY = {"fracta_spawn", "fracta_merge", "fracta_kill", "fracta_say"}


@contextlib.asynccontextmanager
async def serving(errlog: Path, *args: str, cwd: Path) -> AsyncIterator[ClientSession]:
    """`python -m fracta serve ARGS` in `cwd`, as an AI CLI runs it, with an initialized MCP session."""
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "fracta", "serve", *args], cwd=str(cwd), env=dict(os.environ)
    )
    with errlog.open("a") as err:
        async with stdio_client(params, errlog=err) as (read, write), ClientSession(read, write) as session:
            result = await session.initialize()
            assert result.server_info.name == "fracta"
            assert "fracta_inbox" in (result.instructions or "")
            yield session


async def call_text(session: ClientSession, tool: str, **arguments: Any) -> str:
    result = await session.call_tool(tool, arguments)
    text = "\n".join(block.text for block in result.content if block.type == "text")
    assert not result.is_error, text
    return text


async def call(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    data = json.loads(await call_text(session, tool, **arguments))
    assert isinstance(data, dict)
    return data


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


def test_serve_starts_the_control_plane_and_bridges_fracta_tools_as_the_chessmaster(
    initialized: repo_mod.Repo, cli: CliRunner, tmp_path: Path
) -> None:
    r = initialized
    use_free_port(r)
    assert daemon.read_info(r) is None
    assert cli("join", "alice").returncode == 0
    with cleanup(r):

        async def scenario() -> None:
            async with serving(tmp_path / "serve.err", cwd=r.root) as session:
                assert daemon.read_info(r) is not None  # started on demand
                names = {tool.name for tool in (await session.list_tools()).tools}
                assert {"fracta_send", "fracta_inbox", "fracta_list", "fracta_tools"} <= names
                assert names >= CHESSMASTER_ONLY  # the chessmaster's identity

                sent = await call(session, "fracta_send", **{"from": "chessmaster", "to": "alice", "message": "hi"})
                assert sent
                listed = await call(session, "fracta_list")
                [alice] = listed["agents"]
                assert alice["name"] == "alice" and alice["unread"] == 1

                # Concurrent requests each get their own answer.
                replies: list[dict[str, Any]] = []

                async def one() -> None:
                    replies.append(await call(session, "fracta_list"))

                async with anyio.create_task_group() as tg:
                    for _ in range(6):
                        tg.start_soon(one)
                assert [len(reply["agents"]) for reply in replies] == [1] * 6

        run(scenario)
    inbox = cli("inbox", "alice")
    assert inbox.returncode == 0 and "hi" in inbox.stdout
    assert "started the control plane" in (tmp_path / "serve.err").read_text()


def test_serve_keeps_working_across_fracta_down_and_up(
    initialized: repo_mod.Repo, cli: CliRunner, tmp_path: Path
) -> None:
    r = initialized
    use_free_port(r)
    with cleanup(r):

        async def scenario() -> None:
            async with serving(tmp_path / "serve.err", cwd=r.root) as session:
                await call(session, "fracta_list")
                first = daemon.read_info(r)
                assert first is not None

                assert cli("down").returncode == 0
                assert cli("up").returncode == 0
                second = daemon.read_info(r)
                assert second is not None and second.pid != first.pid
                assert (await call(session, "fracta_list"))["agents"] == []
                assert daemon.read_info(r) == second  # it followed the new one, started none of its own

                # Stopped and not restarted: the next call starts it again.
                assert cli("down").returncode == 0
                assert daemon.read_info(r) is None
                await call(session, "fracta_say", to="*", message="still here")
                third = daemon.read_info(r)
                assert third is not None and third.pid not in (first.pid, second.pid)
                names = {tool.name for tool in (await session.list_tools()).tools}
                assert names >= CHESSMASTER_ONLY

        run(scenario)


def test_serve_keeps_working_after_the_control_plane_is_killed(
    initialized: repo_mod.Repo, cli: CliRunner, tmp_path: Path
) -> None:
    r = initialized
    use_free_port(r)
    assert cli("join", "bob").returncode == 0
    with cleanup(r):

        async def scenario() -> None:
            async with serving(tmp_path / "serve.err", cwd=r.root) as session:
                await call(session, "fracta_list")
                killed = kill_control_plane_hard(r)
                assert cli("up").returncode == 0
                await call(session, "fracta_send", **{"from": "chessmaster", "to": "bob", "message": "one"})

                killed_again = kill_control_plane_hard(r)  # and nobody starts it: serve does
                await call(session, "fracta_send", **{"from": "chessmaster", "to": "bob", "message": "two"})
                info = daemon.read_info(r)
                assert info is not None and info.pid not in (killed, killed_again)
                [bob] = (await call(session, "fracta_list"))["agents"]
                assert bob["unread"] == 2

        run(scenario)


def test_serve_with_a_config_path_proxies_the_backend_servers_it_declares(
    initialized: repo_mod.Repo, tmp_path: Path
) -> None:
    r = initialized
    use_free_port(
        r,
        "\nmcp_servers:\n  time:\n"
        f"    command: {json.dumps(sys.executable)}\n"
        "    args: [-m, mcp_server_time, --local-timezone, UTC]\n",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with cleanup(r):

        async def scenario() -> None:
            args = ("--config", str(r.config_path))
            async with serving(tmp_path / "serve.err", *args, cwd=elsewhere) as session:
                names = {tool.name for tool in (await session.list_tools()).tools}
                assert {"time__get_current_time", "fracta_list"} <= names
                now = await call(session, "time__get_current_time", timezone="Asia/Tokyo")
                assert now["timezone"] == "Asia/Tokyo"

        run(scenario)


def test_serve_outside_an_initialized_repository_says_what_to_do(repo_dir: Path, cli: CliRunner) -> None:
    result = cli("serve")
    assert result.returncode != 0
    assert "not initialized" in result.stderr and "fracta init" in result.stderr
    assert result.stdout == ""  # stdout belongs to the MCP client: nothing but JSON-RPC there

    missing = cli("serve", "--config", str(repo_dir / "nowhere" / "fracta.yaml"))
    assert missing.returncode != 0 and "does not exist" in missing.stderr


def test_serve_answers_a_request_it_cannot_parse_and_carries_on(initialized: repo_mod.Repo) -> None:
    use_free_port(initialized)
    with cleanup(initialized):
        initialize = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        }
        lines = [b"this is not json\n", (json.dumps(initialize) + "\n").encode()]
        proc = subprocess.run(
            [sys.executable, "-m", "fracta", "serve"],
            input=b"".join(lines),
            capture_output=True,
            cwd=initialized.root,
            timeout=120,
        )
        replies = [json.loads(line) for line in proc.stdout.splitlines()]
        assert replies[0]["error"]["code"] == -32700
        assert replies[1]["id"] == 1 and replies[1]["result"]["serverInfo"]["name"] == "fracta"


def test_serve_bridges_a_client_that_negotiates_the_2026_protocol_across_a_restart(
    initialized: repo_mod.Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = initialized
    use_free_port(r)
    # The SDK's probe gives a server 10 s to answer server/discover, then falls back to the
    # handshake: a loaded suite's first `fracta serve` (starting the control plane) can pass that.
    monkeypatch.setattr(mcp_session, "DISCOVER_TIMEOUT_SECONDS", 120.0)
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "fracta", "serve"], cwd=str(r.root), env=dict(os.environ)
    )
    with cleanup(r):

        async def scenario() -> None:
            async with Client(params) as client:  # mode "auto": server/discover, no initialize
                assert client.protocol_version not in HANDSHAKE_PROTOCOL_VERSIONS
                assert "fracta_spawn" in {tool.name for tool in (await client.list_tools()).tools}
                kill_control_plane_hard(r)
                result = await client.call_tool("fracta_list", {})
                assert not result.is_error
                listed = result.structured_content or {}
                assert (listed.get("version"), listed.get("agents"), listed.get("problems")) == (1, [], [])
                assert listed["totals"]["agents"] == 0

        run(scenario)


STATEFUL_GATEWAY = """\
import socket
import sys

import uvicorn
from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("stand-in")


@server.tool()
def echo(text: str) -> str:
    \"\"\"Say it back.\"\"\"
    return text


@server.tool()
async def announce(ctx: Context) -> str:
    \"\"\"Tell the client, outside this request, that the tool list changed.\"\"\"
    await ctx.request_context.session.send_tool_list_changed()
    return "announced"


sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", int(sys.argv[1])))
print(sock.getsockname()[1], flush=True)
uvicorn.Server(uvicorn.Config(server.streamable_http_app(), log_level="warning")).run(sockets=[sock])
"""


def start_stand_in(r: repo_mod.Repo, script: Path, port: int = 0) -> tuple[subprocess.Popen[bytes], int]:
    """A stateful streamable-HTTP MCP server, recorded in control.json as if it were the gateway."""
    proc = subprocess.Popen([sys.executable, str(script), str(port)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    url = f"http://127.0.0.1:{port}"
    record = {"schema": 1, "pid": proc.pid, "pid_start": processes.start_time(proc.pid), "url": url}
    atomic.write_json(r.control_path, {**record, "started_at": "now", "gateway_url": f"{url}/mcp"})
    return proc, port


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def test_serve_follows_a_stateful_gateway_session_across_a_restart_and_relays_its_notifications(
    initialized: repo_mod.Repo, tmp_path: Path
) -> None:
    """The bridge makes no assumption that the gateway is stateless: sessions, 404s and the GET stream."""
    r = initialized
    script = tmp_path / "stand_in.py"
    script.write_text(STATEFUL_GATEWAY)
    gateway, port = start_stand_in(r, script)
    notices: list[Any] = []

    async def note(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            notices.append(message)

    async def scenario() -> None:
        nonlocal gateway
        params = StdioServerParameters(
            command=sys.executable, args=["-m", "fracta", "serve"], cwd=str(r.root), env=dict(os.environ)
        )
        async with stdio_client(params) as (read, write), ClientSession(read, write, message_handler=note) as session:
            await session.initialize()
            assert (await call_text(session, "echo", text="one")) == "one"

            with anyio.fail_after(60):  # the relay's GET stream opens shortly after initialize
                while not notices:
                    assert (await call_text(session, "announce")) == "announced"
                    await anyio.sleep(0.2)

            stop(gateway)  # a new server on the same port knows nothing of the old session: 404
            gateway, _ = start_stand_in(r, script, port)
            assert (await call_text(session, "echo", text="two")) == "two"

    try:
        with cleanup(r):
            run(scenario)
    finally:
        stop(gateway)


def test_serve_inside_an_agent_acts_as_that_agent_never_as_the_chessmaster(
    initialized: repo_mod.Repo, cli: CliRunner, tmp_path: Path, monkeypatch: Any
) -> None:
    """An agent's worktree may hold the wired .mcp.json / opencode.json: its `fracta serve` must
    carry the agent's own token (FRACTA_TOKEN), so the agent gains no chessmaster powers."""
    r = initialized
    use_free_port(r)
    assert cli("join", "bob").returncode == 0
    monkeypatch.setenv("FRACTA_TOKEN", (r.agent_dir("bob") / "token").read_text().strip())
    with cleanup(r):

        async def scenario() -> None:
            async with serving(tmp_path / "serve.err", cwd=r.root) as session:
                names = {tool.name for tool in (await session.list_tools()).tools}
                assert not names & CHESSMASTER_ONLY
                refused = await session.call_tool("fracta_send", {"from": "chessmaster", "to": "bob", "message": "x"})
                assert refused.is_error
                await call(session, "fracta_send", **{"from": "bob", "to": "chessmaster", "message": "done"})
                # The control plane this serve started does not carry bob's identity to its agents.
                assert "FRACTA_TOKEN" not in json.loads(r.control_path.read_text())["environment"]["names"]

        run(scenario)
    inbox = json.loads(cli("inbox", "chessmaster", "--json").stdout)
    assert [(m["from"], m["body"]) for m in inbox["messages"]] == [("bob", "done")]


def descendants(pid: int) -> list[int]:
    """Every process below `pid` in the process tree, as OpenCode finds them at exit."""
    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def session_of(pid: int) -> int:
    return os.getsid(pid)


def test_the_control_plane_serve_starts_is_nobodys_child_and_survives_the_end_of_serves_tree(
    initialized: repo_mod.Repo, cli: CliRunner
) -> None:
    """What `opencode run` does at exit: SIGTERM to every descendant of its MCP server, and to the
    server. The control plane that `fracta serve` started, and its agents, are not among them."""
    r = initialized
    use_free_port(r)
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    with cleanup(r):
        serve = subprocess.Popen(
            [sys.executable, "-m", "fracta", "serve"],
            cwd=r.root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert serve.stdin is not None and serve.stdout is not None
        serve.stdin.write((json.dumps(initialize) + "\n").encode())
        serve.stdin.flush()
        assert json.loads(serve.stdout.readline())["result"]["serverInfo"]["name"] == "fracta"
        assert cli("spawn", "sleeper", "--", sys.executable, "-c", "import time; time.sleep(120)").returncode == 0
        info = daemon.read_info(r)
        assert info is not None
        record = json.loads(r.control_path.read_text())
        below = descendants(serve.pid)
        assert info.pid not in below and info.pid not in descendants(os.getpid())
        assert session_of(info.pid) == info.pid  # its own session, led by itself
        for pid in below:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        serve.terminate()
        serve.communicate(timeout=60)
        assert processes.alive(info.pid, record["pid_start"])
        wait_for("sleeper to run", lambda: agents.load(r, "sleeper").status == agents.Status.RUNNING)
        sleeper = agents.load(r, "sleeper")
        assert processes.alive(sleeper.pid, sleeper.pid_start)
        status = cli("status")
        assert status.returncode == 0 and str(info.pid) in status.stdout


def test_fracta_up_reports_a_control_plane_that_fails_at_start_with_its_own_error(
    initialized: repo_mod.Repo, cli: CliRunner
) -> None:
    r = initialized
    use_free_port(r)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        text = r.config_path.read_text()
        r.config_path.write_text(text.replace("port: 0", f"port: {port}", 1))
        with cleanup(r):
            result = cli("up")
    assert result.returncode == 8, result.stderr
    assert f"the control plane exited at start: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "set control_plane.port in fracta.yaml to a free port" in result.stderr
    assert not r.control_path.exists()
