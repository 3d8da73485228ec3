"""The gateway: fracta's MCP tools, and the backends' proxied ones, over streamable HTTP at /mcp.

Every request passes the same bearer-token guard as the REST API (401 before any MCP handling);
each tool then checks what that caller may do. The transport is stateless (no MCP session lives
in the server), so a gateway restarted under its clients, or several behind one address, serve
them alike; each answer is one JSON body (JSON_RESPONSE). DNS-rebinding protection admits only
loopback Host headers on a loopback address.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import mcp.types as types
from mcp.server.lowlevel import Server
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.routing import Mount

from .. import __version__, results
from ..control import server as control_server
from ..errors import FractaError
from ..identity import AuthMiddleware, Caller, caller_of
from ..repo import Repo
from . import tools

if TYPE_CHECKING:
    from ..graph.client import Graph
    from .proxy import BackendPool

log = logging.getLogger("fracta.gateway")

PATH = "/mcp"
MAX_BODY = 1024 * 1024  # a message is at most 64 KiB; nothing an agent sends needs more
# A call's answer as one JSON body, not an SSE stream: fracta's tools send nothing before their
# result (no progress, no server requests), and clients must accept both (the three AI CLIs do).
# Measured (graph_query, 100 rows, official client, 3 x 100 calls, median; busy 2-core machine):
# gateway CPU a call 6.00 -> 3.80 ms, client CPU 4.62 -> 3.45 ms, wall p50 16.1 -> 8.5 ms; the bare
# SDK with an empty tool: 3.80 -> 2.30 ms CPU. An SSE answer also closed its connection (one TCP
# connect a call); a JSON one is kept alive (see control/server.listen for Nagle).
JSON_RESPONSE = True
INSTRUCTIONS = (
    "fracta keeps the agents working on this repository in touch. "
    + tools.RHYTHM
    + " fracta_list shows every agent's status and intent; fracta_peek reads a peer's recent output; "
    "fracta_tools lists and searches every tool you can use here."
)


@dataclass(frozen=True)
class Endpoint:
    sock: socket.socket
    host: str
    url: str  # http://HOST:PORT/mcp

    @property
    def local_url(self) -> str:
        """The URL a process beside the gateway (its strategy runner) calls it by: loopback when
        it listens on every address (0.0.0.0, ::), which is no address to connect to."""
        if self.host not in ("0.0.0.0", "::", ""):
            return self.url
        loopback = "127.0.0.1" if self.host != "::" else "[::1]"
        return f"http://{loopback}:{self.sock.getsockname()[1]}{PATH}"


def listen(repo: Repo, host: str | None = None, port: int | None = None) -> Endpoint:
    """Bind the gateway's socket (gateway.host / gateway.port unless given)."""
    host = host or repo.config.text("gateway.host")
    port = repo.config.integer("gateway.port") if port is None else port
    sock = control_server.listen(host, port, "gateway")
    return Endpoint(sock, host, control_server.url_of(sock, host) + PATH)


def load_pool(repo: Repo) -> BackendPool | None:
    """The backend MCP servers of fracta.yaml, or None while fracta has no proxy module."""
    try:
        from .proxy import BackendPool
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.proxy":
            raise
        return None
    return BackendPool.from_config(repo)


class Gateway:
    """tools/list and tools/call for one repo: fracta's tools by the caller's identity, then the backends'."""

    def __init__(
        self,
        repo: Repo,
        pool: BackendPool | None = None,
        kick: Callable[[], None] | None = None,
        graph: Graph | None = None,
    ) -> None:
        self.repo = repo
        self.pool = pool
        self.kick = kick or (lambda: None)
        self.graph = graph

    def backend_tools(self) -> list[types.Tool]:
        return self.pool.tools() if self.pool is not None else []

    async def list_tools(self, ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        caller = _caller(ctx)
        mine = [_describe(t, caller) for t in tools.visible(caller, self.graph is not None)]
        return types.ListToolsResult(tools=mine + self.backend_tools())

    def input_schema(self, name: str) -> dict[str, Any] | None:
        tool = tools.get(name)
        if tool is not None:
            return tool.input_schema()
        found = next((t for t in self.backend_tools() if t.name == name), None)
        return dict(found.input_schema) if found is not None else None

    async def call_tool(self, ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        try:
            caller = _caller(ctx)
            args = dict(params.arguments or {})
            tool = tools.get(params.name)
            if tool is not None and (self.graph is not None or not tool.needs_graph):
                call = tools.Call(self.repo, caller, params.name, args, self.backend_tools(), self.kick, self.graph)
                return _ok(await anyio.to_thread.run_sync(tool.invoke, call))
            if self.pool is not None and any(t.name == params.name for t in self.pool.tools()):
                return await self.pool.call(params.name, args)
            raise FractaError(f"there is no tool named {params.name!r}", "fracta_tools lists the tools you can use")
        except FractaError as exc:
            return _failed(exc)
        except Exception:  # a bug must not take the gateway down; the traceback goes to the log
            log.exception("tool call crashed", extra={"event": "gateway.tool_crashed", "tool": params.name})
            return _failed(FractaError(f"{params.name} failed unexpectedly", "this is a bug in fracta; see its log"))

    def server(self) -> Server[Any]:
        return Server(
            "fracta",
            version=__version__,
            instructions=INSTRUCTIONS,
            get_tool_input_schema=self.input_schema,
            on_list_tools=self.list_tools,
            on_call_tool=self.call_tool,
        )


def _caller(ctx: Any) -> Caller:
    request = getattr(ctx, "request", None)
    return caller_of(getattr(request, "scope", {}))


def _describe(tool: tools.Tool, caller: Caller) -> types.Tool:
    return types.Tool(
        name=tool.name,
        description=tool.describe(caller),
        input_schema=tool.input_schema(),
        output_schema=tool.output_schema(),
        annotations=types.ToolAnnotations(
            read_only_hint=tool.read_only, destructive_hint=tool.destructive, open_world_hint=False
        ),
    )


def _ok(data: dict[str, Any]) -> types.CallToolResult:
    text = json.dumps(data, ensure_ascii=False)
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], structured_content=data)


def _failed(exc: FractaError) -> types.CallToolResult:
    text = f"error: {exc.message}" + (f"\nhint: {exc.hint}" if exc.hint else "")
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)], structured_content=results.error(exc), is_error=True
    )


def transport_security(repo: Repo, host: str) -> TransportSecuritySettings:
    """Loopback: only loopback Host/Origin headers (plus gateway.allowed_hosts). Elsewhere: the configured ones."""
    extra = [str(h) for h in repo.config.resolved("gateway.allowed_hosts") or []]
    loopback = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    if control_server.is_loopback(host):
        hosts = [*loopback, *extra]
    elif extra:
        # Plus the loopback names, which a rebinding page cannot send (its Host is its own name):
        # the strategy runner beside the gateway calls it on loopback.
        hosts = [*extra, *loopback]
    else:
        log.warning(
            "gateway on a non-loopback address without gateway.allowed_hosts: DNS-rebinding protection is off",
            extra={"event": "gateway.unprotected", "host": host},
        )
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    pages = hosts if control_server.is_loopback(host) else extra  # whose pages may call it: no more than before
    origins = [f"http://{h}" for h in pages] + [f"https://{h}" for h in extra]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


def build(
    repo: Repo,
    host: str,
    *,
    pool: BackendPool | None = None,
    kick: Callable[[], None] | None = None,
    graph: Graph | None = None,
) -> AuthMiddleware:
    """The gateway's ASGI app; its lifespan runs the MCP session manager and the backend pool.
    `graph`: the knowledge graph it serves (default: the one fracta.yaml names, if installed)."""
    if graph is None:
        graph = serving_graph(repo)
    gateway = Gateway(repo, pool if pool is not None else load_pool(repo), kick, graph)
    server = gateway.server()
    mcp_app = server.streamable_http_app(
        streamable_http_path=PATH,
        stateless_http=True,
        json_response=JSON_RESPONSE,
        max_request_body_size=MAX_BODY,
        transport_security=transport_security(repo, host),
        host=host,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with server.session_manager.run():
            await _start(gateway)
            try:
                yield
            finally:
                if gateway.pool is not None:
                    await gateway.pool.stop()

    return AuthMiddleware(Starlette(routes=[Mount("/", app=mcp_app)], lifespan=lifespan), repo)


def serving_graph(repo: Repo) -> Graph | None:
    """The knowledge graph a gateway serves: the service fracta.yaml names, or the embedded server
    the control plane runs (connected on first use); None without fracta[graph]."""
    from ..graph import settings

    if not settings.available(repo):
        return None
    from ..graph import ops
    from ..graph.client import Graph

    if not settings.of(repo).embedded:
        return Graph(settings.of(repo))
    return Graph(settings.of(repo), reconnect=lambda: ops.embedded_socket(repo))


async def _start(gateway: Gateway) -> None:
    """Start the backends; one that fails leaves fracta's own tools working."""
    if gateway.pool is None:
        return
    try:
        await gateway.pool.start()
    except Exception:
        log.exception(
            "the backend MCP servers failed to start; serving fracta's own tools only",
            extra={"event": "backends.start_failed"},
        )
        with contextlib.suppress(Exception):
            await gateway.pool.stop()
        gateway.pool = None


def serve(repo: Repo, host: str | None = None, port: int | None = None) -> int:
    """Run the gateway alone in the foreground (Compose, Kubernetes) until SIGTERM/SIGINT; its
    start and its end are logged."""
    import dataclasses
    import os
    import threading

    from .. import logs, progress
    from ..strategies import sidecar as strategies_sidecar

    if threading.current_thread() is threading.main_thread():
        logs.raise_on_signals()  # until it serves (serve_all handles them then): a logged exit, not a silent one
    with logs.exit_logged("gateway") as ending:
        log.info("gateway starting", extra={"event": "gateway.started", "pid": os.getpid()})
        sink = progress.coalescer_for(repo)  # many agents' sends: coalesce progress.md regenerations
        repo = dataclasses.replace(repo, progress_sink=sink)
        endpoint = listen(repo, host, port)
        log.info("gateway listening", extra={"event": "gateway.listening", "url": endpoint.url})
        runner = None
        try:
            app = build(repo, endpoint.host)
            # strategy_run needs a runner, as under the control plane: this gateway's own, unless one serves already.
            runner = strategies_sidecar.for_gateway(repo, endpoint.local_url)
            ending.signal = control_server.serve_all([(app, endpoint.sock, True)], threading.Event())
        finally:
            if runner is not None:
                runner.stop()
            sink.flush()
    return ending.code
