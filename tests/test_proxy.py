"""The backend MCP proxy, against real third-party MCP servers from PyPI (mcp-server-time, mcp-server-git)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from fracta import repo as repo_mod
from fracta.gateway.proxy import (
    BackendPool,
    BackendUnavailable,
    RestartPolicy,
    SkippedBackend,
    UnknownTool,
    parse_servers,
)

FAST = RestartPolicy(start_timeout=60.0, max_attempts=3, backoff_first=0.05, backoff_max=0.2)
PY = json.dumps(sys.executable)


def configure(r: repo_mod.Repo, servers: str) -> repo_mod.Repo:
    r.config_path.write_text(r.config_path.read_text() + "\nmcp_servers:\n" + servers)
    return repo_mod.find(r.root, env={})  # a fresh Repo: config is read once per object


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


def text_of(result: Any) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


def children_running(module: str) -> list[int]:
    """Our own child processes whose command line names `module` (xdist-safe: only this process's)."""
    found = []
    for child in psutil.Process().children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and module in child.cmdline():
                found.append(child.pid)
        except psutil.Error:
            continue
    return found


TIME = f"""\
  time:
    command: {PY}
    args: [-m, mcp_server_time, --local-timezone, "${{FRACTA_TEST_TZ:-UTC}}"]
"""


def git_server(root: Path) -> str:
    return f"""\
  git:
    command: {PY}
    args: [-m, mcp_server_git, --repository, {json.dumps(str(root))}]
"""


def test_two_real_servers_are_proxied_under_namespaced_names_and_callable(initialized: repo_mod.Repo) -> None:
    r = configure(initialized, TIME + git_server(initialized.root))

    async def scenario() -> None:
        async with BackendPool.from_config(r, policy=FAST) as pool:
            names = {tool.name for tool in pool.tools()}
            assert {"time__get_current_time", "time__convert_time", "git__git_status", "git__git_log"} <= names
            described = {tool.name: tool for tool in pool.tools()}
            assert described["time__get_current_time"].description
            assert "timezone" in described["time__get_current_time"].input_schema["properties"]

            now = await pool.call("time__get_current_time", {"timezone": "Europe/Paris"})
            assert not now.is_error
            assert json.loads(text_of(now))["timezone"] == "Europe/Paris"

            status = await pool.call("git__git_status", {"repo_path": str(r.root)})
            assert not status.is_error
            assert "On branch main" in text_of(status)
            log = await pool.call("git__git_log", {"repo_path": str(r.root), "max_count": 1})
            assert "initial commit" in text_of(log)
            assert pool.skipped() == []

    run(scenario)
    assert children_running("mcp_server_time") == []  # stop() ended the servers


def test_a_backend_with_a_missing_variable_is_skipped_and_reported_while_the_rest_work(
    initialized: repo_mod.Repo, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FRACTA_TEST_VENDOR_URL", raising=False)
    monkeypatch.delenv("FRACTA_TEST_VENDOR_TOKEN", raising=False)
    vendor = """\
  vendor:
    url: ${FRACTA_TEST_VENDOR_URL}/mcp
    headers: {Authorization: "Bearer ${FRACTA_TEST_VENDOR_TOKEN}"}
"""
    r = configure(initialized, vendor + TIME)

    async def scenario() -> None:
        caplog.set_level(logging.WARNING, logger="fracta.gateway.proxy")
        async with BackendPool.from_config(r, policy=FAST) as pool:
            [skipped] = pool.skipped()
            assert skipped.name == "vendor"
            assert skipped.missing == ("FRACTA_TEST_VENDOR_TOKEN", "FRACTA_TEST_VENDOR_URL")
            warning = "\n".join(rec.getMessage() for rec in caplog.records if rec.name == "fracta.gateway.proxy")
            assert "vendor" in warning and "FRACTA_TEST_VENDOR_TOKEN" in warning and "FRACTA_TEST_VENDOR_URL" in warning

            assert not any(tool.name.startswith("vendor__") for tool in pool.tools())
            with pytest.raises(UnknownTool):
                await pool.call("vendor__search", {})
            result = await pool.call("time__get_current_time", {"timezone": "UTC"})
            assert json.loads(text_of(result))["timezone"] == "UTC"

    run(scenario)


def test_a_killed_backend_is_restarted_and_the_next_call_succeeds(initialized: repo_mod.Repo) -> None:
    r = configure(initialized, TIME)

    async def scenario() -> None:
        async with BackendPool.from_config(r, policy=FAST) as pool:
            first = await pool.call("time__get_current_time", {"timezone": "UTC"})
            assert not first.is_error
            [pid] = children_running("mcp_server_time")
            os.kill(pid, signal.SIGKILL)

            again = await pool.call("time__get_current_time", {"timezone": "Asia/Tokyo"})
            assert not again.is_error
            assert json.loads(text_of(again))["timezone"] == "Asia/Tokyo"
            [status] = pool.status()
            assert status.state == "ready" and status.restarts >= 1
            assert children_running("mcp_server_time") not in ([], [pid])

            # Killed twice more: each time the next call still gets through.
            for _ in range(2):
                [pid] = children_running("mcp_server_time")
                os.kill(pid, signal.SIGKILL)
                result = await pool.call(
                    "time__convert_time", {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}
                )
                assert not result.is_error, text_of(result)

    run(scenario)


def test_a_backend_that_cannot_start_fails_calls_clearly_and_the_others_keep_working(
    initialized: repo_mod.Repo,
) -> None:
    broken = f"""\
  broken:
    command: {PY}
    args: [-c, "import sys; print('no credentials here', file=sys.stderr); sys.exit(3)"]
"""
    r = configure(initialized, broken + TIME)

    async def scenario() -> None:
        async with BackendPool.from_config(r, policy=FAST) as pool:
            with pytest.raises(BackendUnavailable) as raised:
                await pool.call("broken__anything", {})
            assert "'broken' is down" in raised.value.message
            assert "mcp-broken.log" in raised.value.hint
            result = await pool.call("time__get_current_time", {"timezone": "UTC"})
            assert not result.is_error
            states = {s.name: s.state for s in pool.status()}
            assert states == {"broken": "down", "time": "ready"}

    run(scenario)
    assert "no credentials here" in (r.logs_dir / "mcp-broken.log").read_text()


def test_a_tool_error_from_a_backend_comes_back_as_an_error_result(initialized: repo_mod.Repo) -> None:
    r = configure(initialized, TIME)

    async def scenario() -> None:
        async with BackendPool.from_config(r, policy=FAST) as pool:
            result = await pool.call("time__get_current_time", {"timezone": "Not/AZone"})
            assert result.is_error
            assert "Not/AZone" in text_of(result)

    run(scenario)


HTTP_SERVER = """\
import socket
import sys

import uvicorn
from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("echo")


@server.tool()
def whoami(ctx: Context) -> str:
    \"\"\"The Authorization header this request carried.\"\"\"
    request = ctx.request_context.request  # the Starlette request it came in
    return request.headers.get("authorization", "") if request is not None else ""


sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", int(sys.argv[1])))
print(sock.getsockname()[1], flush=True)
config = uvicorn.Config(server.streamable_http_app(), log_level="warning")
uvicorn.Server(config).run(sockets=[sock])
"""


def start_http_server(script: Path, port: int = 0) -> tuple[subprocess.Popen[bytes], int]:
    """Start the echo server (on a free port unless given); return it once it accepts connections."""
    proc = subprocess.Popen([sys.executable, str(script), str(port)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        time.sleep(0.05)
    stop(proc)
    raise AssertionError("the HTTP MCP server did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def test_an_http_backend_gets_its_interpolated_headers_and_survives_a_server_restart(
    initialized: repo_mod.Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "echo_server.py"
    script.write_text(HTTP_SERVER)
    server, port = start_http_server(script)
    monkeypatch.setenv("FRACTA_TEST_ECHO_PORT", str(port))
    monkeypatch.setenv("FRACTA_TEST_ECHO_TOKEN", "s3cret")
    r = configure(
        initialized,
        """\
  echo:
    url: http://127.0.0.1:${FRACTA_TEST_ECHO_PORT}/mcp
    headers: {Authorization: "Bearer ${FRACTA_TEST_ECHO_TOKEN}"}
""",
    )
    try:

        async def scenario() -> None:
            nonlocal server
            async with BackendPool.from_config(r, policy=FAST) as pool:
                assert [tool.name for tool in pool.tools()] == ["echo__whoami"]
                assert text_of(await pool.call("echo__whoami", {})) == "Bearer s3cret"

                stop(server)
                server, _ = start_http_server(script, port)  # same port, no memory of the old session
                assert text_of(await pool.call("echo__whoami", {})) == "Bearer s3cret"

        run(scenario)
    finally:
        stop(server)


def test_malformed_entries_are_skipped_with_a_reason() -> None:
    raw = {
        "both": {"command": "x", "url": "http://y"},
        "neither": {"args": ["x"]},
        "bad__name": {"command": "x"},
        "typo": {"command": "x", "argz": []},
        "ok": {"command": "${CMD:-python3}", "args": ["-V"], "env": {"PORT": 8080}},
    }
    specs, skipped = parse_servers(raw, env={})
    assert [s.name for s in specs] == ["ok"]
    assert specs[0].command == "python3" and specs[0].env == {"PORT": "8080"}
    reasons = {s.name: s.reason for s in skipped}
    assert "exactly one of" in reasons["both"] and "exactly one of" in reasons["neither"]
    assert "single '_'" in reasons["bad__name"]
    assert "argz" in reasons["typo"]
    assert all(isinstance(s, SkippedBackend) and s.missing == () for s in skipped)
