"""Backend MCP servers declared in fracta.yaml: started, supervised, and offered as `<server>__<tool>`.

Each backend runs under its own supervisor task that owns the SDK's transport and `ClientSession`
(anyio wants a context entered and left in one task); calls from any task share that session. A
backend whose process dies or whose session breaks is reconnected with bounded, backed-off
retries, and a call waits (bounded) for a restart in progress. One left down after repeated
failures is tried once more per call; a call that still cannot get through fails with an error
that names the server, its last failure and where its stderr went.

A stdio backend gets the SDK's minimal default environment (PATH, HOME, ...) plus its own `env:`,
so a secret reaches only the backends whose entries name it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import sys
import time
from collections.abc import AsyncIterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

import anyio
import mcp.types as types
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage

from .. import __version__
from ..config import interpolate
from ..errors import EXIT_NOT_FOUND, EXIT_UNAVAILABLE, ConfigError, FractaError

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectSendStream
    from mcp.client._transport import TransportStreams

    from ..repo import Repo

log = logging.getLogger("fracta.gateway.proxy")

SEPARATOR = "__"
# A server name becomes a tool-name prefix: MCP tool names allow [A-Za-z0-9_.-], and "__" separates.
_SERVER_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]|_(?!_))*$")
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_STDIO_KEYS = {"command", "args", "env", "cwd", "timeout"}
_HTTP_KEYS = {"url", "headers", "timeout"}

CALL_TIMEOUT = 300.0  # default bound on one proxied tool call (per backend: `timeout:`)

State = Literal["starting", "ready", "restarting", "down", "stopped"]


class BackendError(FractaError):
    """A backend MCP server answered a proxied call with a protocol error."""

    http_status = 502


class BackendUnavailable(BackendError):
    """The backend is not running (starting, restarting, or given up after repeated failures)."""

    exit_code = EXIT_UNAVAILABLE
    http_status = 503


class UnknownTool(FractaError):
    exit_code = EXIT_NOT_FOUND
    http_status = 404


@dataclass(frozen=True)
class SkippedBackend:
    """A backend left out at start: the variables it needs are unset, or its entry is malformed."""

    name: str
    missing: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class BackendSpec:
    """One `mcp_servers:` entry with its ${VAR}s filled in: stdio (`command`) or HTTP (`url`)."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = CALL_TIMEOUT


@dataclass(frozen=True)
class RestartPolicy:
    """How hard to try: bounded attempts with exponential backoff, then down until the next call."""

    start_timeout: float = 30.0  # one attempt to start and initialize a backend
    max_attempts: int = 6  # consecutive failures before a backend is left down
    backoff_first: float = 0.25
    backoff_max: float = 10.0
    stable_after: float = 30.0  # a session that lived this long resets the failure count when it dies

    def delay(self, failures: int) -> float:
        return float(min(self.backoff_first * 2 ** (failures - 1), self.backoff_max))


@dataclass(frozen=True)
class BackendStatus:
    name: str
    state: State
    tools: int
    restarts: int
    last_error: str | None


def parse_servers(
    raw: Any, env: Mapping[str, str], default_cwd: Path | None = None
) -> tuple[list[BackendSpec], list[SkippedBackend]]:
    """Split `mcp_servers:` into runnable specs and skipped entries (each skip says why)."""
    if raw is None:
        return [], []
    if not isinstance(raw, Mapping):
        raise ConfigError("mcp_servers in fracta.yaml must be a mapping of server name to settings")
    specs: list[BackendSpec] = []
    skipped: list[SkippedBackend] = []
    for name, entry in raw.items():
        missing: list[str] = []
        filled = interpolate(entry, env, missing)
        if missing:
            names = tuple(sorted(set(missing)))
            skipped.append(SkippedBackend(str(name), names, f"environment variable(s) {', '.join(names)} not set"))
            continue
        try:
            specs.append(_spec(str(name), filled, default_cwd))
        except ValueError as exc:
            skipped.append(SkippedBackend(str(name), (), str(exc)))
    return specs, skipped


def _spec(name: str, entry: Any, default_cwd: Path | None) -> BackendSpec:
    if not _SERVER_NAME.match(name):
        raise ValueError("the name may use letters, digits, '-' and single '_' (it prefixes tool names)")
    if not isinstance(entry, Mapping):
        raise ValueError("its settings must be a mapping with `command` (stdio) or `url` (HTTP)")
    if ("command" in entry) == ("url" in entry):
        raise ValueError("give exactly one of `command` (stdio) or `url` (HTTP)")
    allowed = _STDIO_KEYS if "command" in entry else _HTTP_KEYS
    if unknown := sorted(set(entry) - allowed):
        raise ValueError(f"unknown setting(s) {', '.join(map(str, unknown))}; allowed: {', '.join(sorted(allowed))}")
    try:
        timeout = float(entry.get("timeout", CALL_TIMEOUT))
    except (TypeError, ValueError):
        raise ValueError(f"timeout must be a number of seconds, not {entry.get('timeout')!r}") from None
    if "url" in entry:
        return BackendSpec(name, url=str(entry["url"]), headers=_strings(entry, "headers"), timeout=timeout)
    args = entry.get("args") or []
    if not isinstance(args, list):
        raise ValueError("args must be a list")
    cwd = entry.get("cwd")
    return BackendSpec(
        name,
        command=str(entry["command"]),
        args=tuple(str(a) for a in args),
        env=_strings(entry, "env"),
        cwd=str(cwd) if cwd else (str(default_cwd) if default_cwd else None),
        timeout=timeout,
    )


def _strings(entry: Mapping[str, Any], key: str) -> dict[str, str]:
    value = entry.get(key) or {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{key} must be a mapping of names to values")
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


def _describe(exc: BaseException) -> str:
    """A one-line reason, digging the first real error out of anyio's exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Backend:
    """One supervised backend server and its current session."""

    def __init__(self, spec: BackendSpec, log_dir: Path | None, policy: RestartPolicy) -> None:
        self.spec = spec
        self.log_dir = log_dir
        self.policy = policy
        self.state: State = "starting"
        self.session: ClientSession | None = None
        self.tools: list[types.Tool] = []
        self.restarts = 0
        self.failures = 0  # consecutive: failed starts, and deaths soon after a start
        self.last_error: str | None = None
        self.stopping = False
        self._changed = anyio.Event()  # set (and replaced) on every state change
        self._ended: anyio.Event | None = None  # the live session's "it is over" signal
        self._relist: anyio.Event | None = None
        self._kick = anyio.Event()  # a call asks a backend left down for another round
        self._settled = anyio.Event()  # the first attempt has succeeded or failed
        self._ready_at: float | None = None  # when the current session became ready
        self._scope: anyio.CancelScope | None = None
        self._task: asyncio.Task[None] | None = None

    def _set(self, state: State, error: str | None = None) -> None:
        self.state = state
        if error is not None:
            self.last_error = error
        self._changed.set()
        self._changed = anyio.Event()

    def status(self) -> BackendStatus:
        return BackendStatus(self.spec.name, self.state, len(self.tools), self.restarts, self.last_error)

    # --- supervision --------------------------------------------------------------------------

    def start(self) -> None:
        # A plain task, not a task group entered in start(): start() and stop() may then be
        # called from different tasks (a web app's lifespan, a test), and stop() cancels by scope.
        self._task = asyncio.get_running_loop().create_task(self._supervise(), name=f"mcp-{self.spec.name}")

    async def settled(self) -> None:
        await self._settled.wait()

    async def stop(self) -> None:
        self.stopping = True
        self._set("stopped")
        if self._scope is not None:
            self._scope.cancel()
        if self._task is not None:
            await self._task

    async def _supervise(self) -> None:
        with anyio.CancelScope() as self._scope:
            while not self.stopping:
                self._ready_at = None
                try:
                    await self._run_session()
                    reason = "its session ended (the process exited or the connection closed)"
                except Exception as exc:
                    reason = _describe(exc)
                self.session = None
                self._settled.set()
                if self.stopping:
                    break
                lived = time.monotonic() - self._ready_at if self._ready_at is not None else 0.0
                stable = lived >= self.policy.stable_after
                self.failures = 1 if stable else self.failures + 1
                if self.failures >= self.policy.max_attempts:
                    log.error(
                        "MCP server %r is down after %d failed attempts: %s",
                        self.spec.name,
                        self.failures,
                        reason,
                        extra={"event": "backend.down", "backend": self.spec.name},
                    )
                    self._set("down", reason)
                    await self._kick.wait()
                    self._kick = anyio.Event()
                    self.failures = self.policy.max_attempts - 1  # a kicked round is one attempt
                    self._set("starting")
                else:
                    delay = self.policy.delay(self.failures)
                    what = "died" if self._ready_at is not None else "failed to start"
                    log.warning(
                        "MCP server %r %s: %s; restarting in %.2gs",
                        self.spec.name,
                        what,
                        reason,
                        delay,
                        extra={"event": "backend.restarting", "backend": self.spec.name},
                    )
                    self._set("restarting", reason)
                    await anyio.sleep(delay)
                self.restarts += 1

    async def _run_session(self) -> None:
        async with contextlib.AsyncExitStack() as stack:
            read, write = await self._open(stack)
            # The session reads through a pump, so the end of the backend's stream (its process
            # died) is noticed here at once rather than by the next call.
            ended = anyio.Event()
            to_session, from_pump = anyio.create_memory_object_stream[SessionMessage | Exception](0)
            tg = await stack.enter_async_context(anyio.create_task_group())
            tg.start_soon(_pump, read, to_session, ended)
            session = await stack.enter_async_context(
                ClientSession(
                    from_pump,
                    write,
                    message_handler=self._on_message,
                    client_info=types.Implementation(name="fracta-gateway", version=__version__),
                )
            )
            with anyio.fail_after(self.policy.start_timeout):
                await session.initialize()
                self.tools = self._usable(await _list_tools(session))
            relist = anyio.Event()
            self.session, self._ended, self._relist = session, ended, relist
            self._ready_at = time.monotonic()
            self._set("ready")
            self._settled.set()
            extra = {"event": "backend.ready", "backend": self.spec.name, "tools": len(self.tools)}
            log.info("MCP server %r ready with %d tool(s)", self.spec.name, len(self.tools), extra=extra)
            tg.start_soon(self._relister, session, relist)
            await ended.wait()
            tg.cancel_scope.cancel()

    async def _open(self, stack: contextlib.AsyncExitStack) -> TransportStreams:
        """Start the backend's transport inside `stack`: a child process (stdio) or an HTTP client."""
        spec = self.spec
        if spec.url is not None:
            import httpx2

            # The SDK's recommended timeouts: a response stream may stay open a long while.
            timeout = httpx2.Timeout(self.policy.start_timeout, read=max(300.0, spec.timeout))
            http = await stack.enter_async_context(httpx2.AsyncClient(headers=dict(spec.headers), timeout=timeout))
            return await stack.enter_async_context(streamable_http_client(spec.url, http_client=http))
        assert spec.command is not None
        errlog: TextIO = sys.stderr
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            errlog = stack.enter_context(open(self._stderr_path(), "a", encoding="utf-8"))  # noqa: SIM115
        params = StdioServerParameters(command=spec.command, args=list(spec.args), env=dict(spec.env), cwd=spec.cwd)
        return await stack.enter_async_context(stdio_client(params, errlog=errlog))

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification) and self._relist is not None:
            self._relist.set()

    async def _relister(self, session: ClientSession, relist: anyio.Event) -> None:
        """Re-read the tool list when the backend says it changed (not in the dispatcher's task)."""
        while True:
            await relist.wait()
            self._relist = relist = anyio.Event()
            try:
                self.tools = self._usable(await _list_tools(session))
            except Exception as exc:  # keep the old list; a dead session is noticed by the pump
                log.warning(
                    "MCP server %r: re-listing its tools failed: %s",
                    self.spec.name,
                    _describe(exc),
                    extra={"event": "backend.relist_failed", "backend": self.spec.name},
                )

    def _usable(self, tools: list[types.Tool]) -> list[types.Tool]:
        """The tools whose namespaced name is a valid MCP tool name (the others are logged and left out)."""
        kept = []
        for tool in tools:
            if _TOOL_NAME.match(f"{self.spec.name}{SEPARATOR}{tool.name}"):
                kept.append(tool)
            else:
                log.warning(
                    "MCP server %r: tool %r left out: its namespaced name is not valid",
                    self.spec.name,
                    tool.name,
                    extra={"event": "backend.tool_left_out", "backend": self.spec.name, "tool": tool.name},
                )
        return kept

    # --- calls --------------------------------------------------------------------------------

    async def _ready_session(self) -> ClientSession:
        """The live session, after waiting out a start or restart in progress; fails at once if down."""
        kicked = False
        with anyio.move_on_after(self.policy.start_timeout + self.policy.backoff_max):
            while self.state != "stopped":
                if self.state == "ready" and self.session is not None:
                    return self.session
                if self.state == "down":
                    if kicked:
                        break
                    self._kick.set()  # a backend left down gets one more attempt per call
                    kicked = True
                await self._changed.wait()
        if self.state == "down":
            hint = "each call tries it once more; fix its settings in fracta.yaml if this persists"
        else:
            hint = "fracta restarts it with backoff; retry shortly"
        where = (
            f" (its stderr: {self.log_dir / f'mcp-{self.spec.name}.log'})" if self.log_dir and self.spec.command else ""
        )
        raise BackendUnavailable(
            f"MCP server {self.spec.name!r} is {self.state}: {self.last_error or 'not started yet'}", hint + where
        )

    def _stderr_path(self) -> Path:
        assert self.log_dir is not None
        return self.log_dir / f"mcp-{self.spec.name}.log"

    def _lose(self, session: ClientSession) -> None:
        """Mark `session` dead (a call saw it close) so no caller is handed it again."""
        if self.session is session:
            self.session = None
            self._set("restarting", "its session was lost during a call")
            if self._ended is not None:
                self._ended.set()

    async def call(self, tool: str, arguments: dict[str, Any]) -> types.CallToolResult:
        """Call `tool`; a call cut off by a lost session is retried once on the next session."""
        full = f"{self.spec.name}{SEPARATOR}{tool}"
        for attempt in (1, 2):
            session = await self._ready_session()
            try:
                return await session.call_tool(tool, arguments, read_timeout_seconds=self.spec.timeout)
            except MCPError as exc:
                if exc.code == types.REQUEST_TIMEOUT:
                    raise BackendError(
                        f"{full} timed out after {self.spec.timeout:g}s",
                        f"raise mcp_servers.{self.spec.name}.timeout in fracta.yaml if it needs longer",
                    ) from None
                if not _session_lost(exc):
                    raise BackendError(f"{full} failed: {exc.message}") from None
                self._lose(session)
                if attempt == 2:
                    raise BackendUnavailable(
                        f"MCP server {self.spec.name!r} lost its session twice during {full}",
                        "it is being restarted; retry shortly",
                    ) from None
        raise AssertionError("unreachable")


def _session_lost(exc: MCPError) -> bool:
    """The connection closed, or an HTTP server no longer knows the session (it restarted)."""
    if exc.code == types.CONNECTION_CLOSED:
        return True
    # The SDK reports an HTTP 404 for the session as INVALID_REQUEST, with no finer code.
    text = exc.message.lower()
    return exc.code == types.INVALID_REQUEST and "session" in text and ("not found" in text or "terminated" in text)


async def _pump(
    read: AsyncIterable[SessionMessage | Exception],
    to_session: MemoryObjectSendStream[SessionMessage | Exception],
    ended: anyio.Event,
) -> None:
    try:
        # The backend's stream or our session closing is how this pump ends, not an error.
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream):
            async with to_session:
                async for item in read:
                    await to_session.send(item)
    finally:
        ended.set()


async def _list_tools(session: ClientSession) -> list[types.Tool]:
    tools: list[types.Tool] = []
    cursor: str | None = None
    while True:
        params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await session.list_tools(params=params)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            return tools


class BackendPool:
    """Every backend of `mcp_servers:`: start, stop, list their tools namespaced, dispatch calls."""

    def __init__(
        self,
        specs: list[BackendSpec],
        skipped: list[SkippedBackend] | None = None,
        log_dir: Path | None = None,
        policy: RestartPolicy | None = None,
    ) -> None:
        self.policy = policy or RestartPolicy()
        self._backends = {spec.name: Backend(spec, log_dir, self.policy) for spec in specs}
        self._skipped = list(skipped or [])

    @classmethod
    def from_config(
        cls, repo: Repo, env: Mapping[str, str] | None = None, policy: RestartPolicy | None = None
    ) -> BackendPool:
        """Read `mcp_servers:` from the repo's fracta.yaml; warn about (and keep) each skipped one."""
        specs, skipped = parse_servers(repo.config.get("mcp_servers"), os.environ if env is None else env, repo.root)
        for skip in skipped:
            log.warning(
                "MCP server %r skipped: %s",
                skip.name,
                skip.reason,
                extra={"event": "backend.skipped", "server": skip.name, "missing": list(skip.missing)},
            )
        return cls(specs, skipped, repo.logs_dir, policy)

    async def start(self) -> None:
        """Start every backend; returns once each is ready or has failed its first attempt."""
        for backend in self._backends.values():
            backend.start()
        with anyio.move_on_after(self.policy.start_timeout):
            for backend in self._backends.values():
                await backend.settled()

    async def stop(self) -> None:
        """Stop every backend at once (each: close its stdin, then terminate its process tree)."""
        await asyncio.gather(*(backend.stop() for backend in self._backends.values()))

    async def __aenter__(self) -> BackendPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def tools(self) -> list[types.Tool]:
        """Every backend's last known tools, renamed `<server>__<tool>`."""
        out: list[types.Tool] = []
        for name, backend in self._backends.items():
            out.extend(tool.model_copy(update={"name": f"{name}{SEPARATOR}{tool.name}"}) for tool in backend.tools)
        return out

    async def call(self, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        """Call `<server>__<tool>` on its backend; a tool's own failure comes back as `is_error`."""
        server, sep, tool = name.partition(SEPARATOR)
        backend = self._backends.get(server) if sep else None
        if backend is None:
            known = ", ".join(self._backends) or "none"
            raise UnknownTool(f"no proxied MCP server for tool {name!r}", f"proxied servers: {known}")
        return await backend.call(tool, arguments)

    def skipped(self) -> list[SkippedBackend]:
        return list(self._skipped)

    def status(self) -> list[BackendStatus]:
        return [backend.status() for backend in self._backends.values()]
