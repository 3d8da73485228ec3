"""A bare MCP SDK server for the benchmarks' second baseline: one empty tool, nothing of fracta's.

Run: .venv/bin/python bench/mcp_bare.py PORT_FILE

The same SDK, transport and settings as fracta's gateway (lowlevel Server, streamable HTTP,
stateless, the gateway's response mode and body limit, uvicorn with the same options), with one
tool `noop` that returns `{}` and no authentication, no identity, no thread hop. What a call to it
costs is the MCP SDK's own per-request floor on this machine; a fracta tool's time above it is
fracta's. Binds 127.0.0.1 on a free port and writes the port to PORT_FILE once it listens.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import mcp.types as types
import uvicorn
from mcp.server.lowlevel import Server
from starlette.applications import Starlette
from starlette.routing import Mount

from fracta.control import server as control_server
from fracta.gateway import app as gateway


async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
    return types.ListToolsResult(tools=[types.Tool(name="noop", input_schema={"type": "object"})])


async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text="{}")], structured_content={})


def main() -> None:
    server: Server[Any] = Server("bare", on_list_tools=list_tools, on_call_tool=call_tool)
    mcp_app = server.streamable_http_app(
        streamable_http_path=gateway.PATH,
        stateless_http=True,
        json_response=gateway.JSON_RESPONSE,
        max_request_body_size=gateway.MAX_BODY,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with server.session_manager.run():
            Path(sys.argv[1]).write_text(str(sock.getsockname()[1]))
            yield

    sock = control_server.listen("127.0.0.1", 0, "bare")  # the gateway's own listening socket
    app = Starlette(routes=[Mount("/", app=mcp_app)], lifespan=lifespan)
    config = uvicorn.Config(app, log_config=None, access_log=False, timeout_graceful_shutdown=1)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
