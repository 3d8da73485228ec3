"""`fracta serve`: the stdio MCP server an AI CLI launches, a thin bridge to the gateway over HTTP.

It holds no tool logic: each JSON-RPC message read on stdin is POSTed to the gateway's
streamable-HTTP MCP endpoint with the chessmaster's token, and whatever comes back (a JSON body
or an SSE stream of messages) is written to stdout; the gateway's GET stream is relayed too.
It speaks the HTTP side itself, with the standard library, because importing the MCP SDK takes
over a second here and an AI CLI starts this on every launch.

When the control plane goes away (stopped, killed, restarted on another port), the next request
finds it again in control.json, starts it if none runs, replays the client's `initialize` to open a
new upstream session, and retries. Only requests reconnect: after a deliberate `fracta down` the
bridge starts the control plane again when the AI CLI next needs it, not before.

The control plane it starts is nobody's child (fracta/control/daemon.py): when the AI CLI ends
this process and its descendants (`opencode run` does at exit), the control plane and its agents
live on. It inherits this process's environment, which is what the AI CLI chose to pass; see
fracta/environment.py for why Codex's entry forwards provider variables by name.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import threading
import time
from base64 import b64encode
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from . import httplite
from . import repo as repo_mod
from .errors import ConfigError, ControlPlaneUnavailable, FractaError
from .httplite import Response

Message = dict[str, Any]
Emit = Callable[[Message], None]

CONNECT_TIMEOUT = 10.0
RETRY_WINDOW = 60.0  # how long one request keeps trying to reach a restarting control plane
MAX_ATTEMPTS = 4
# After stdin closes, requests in flight may still finish for as long as they would have had with
# stdin open (a client piping its requests in closes stdin at once, then waits for the replies;
# 10 s was passed by a control plane starting on a loaded machine); any left then get an error.
DRAIN_TIMEOUT = RETRY_WINDOW + CONNECT_TIMEOUT
PROTOCOL_VERSION_META = "io.modelcontextprotocol/protocolVersion"
NAME_BEARING = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
_HEADER_SAFE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")
UNAVAILABLE = -32000  # JSON-RPC "server error" range: the bridge could not reach fracta

log = logging.getLogger("fracta.serve")


class UpstreamLost(Exception):
    """The gateway connection or session is gone; reconnecting may help."""


def find_repo(config: Path | None) -> repo_mod.Repo:
    """The initialized repo that `config` (default ./fracta.yaml) belongs to."""
    path = (config or Path(repo_mod.CONFIG_FILE)).expanduser().resolve()
    if config is not None and not path.is_file():
        raise ConfigError(f"config file {path} does not exist", "pass --config PATH to your fracta.yaml")
    return repo_mod.find(path.parent).require_initialized()


@dataclass
class Endpoint:
    url: str
    host: str
    port: int
    path: str


def _endpoint(gateway_url: str) -> Endpoint:
    """The MCP endpoint of a gateway URL (`http://HOST:PORT/mcp`, or the same without `/mcp`)."""
    from urllib.parse import urlsplit

    parts = urlsplit(gateway_url)
    if parts.scheme != "http" or not parts.hostname:
        raise ControlPlaneUnavailable(f"unusable gateway URL {gateway_url!r}", "fracta serve speaks plain HTTP")
    path = parts.path.rstrip("/")
    path = path if path.endswith("/mcp") else f"{path}/mcp"
    return Endpoint(f"http://{parts.netloc}{path}", parts.hostname, parts.port or 80, path)


def _http(end: Endpoint, method: str, headers: dict[str, str], body: bytes, connect_timeout: float) -> Response:
    return httplite.request(end.host, end.port, method, end.path, headers, body, connect_timeout=connect_timeout)


def _header_value(value: str) -> str:
    """Mirror the SDK's header encoding: printable ASCII verbatim, anything else base64-wrapped."""
    if _HEADER_SAFE.fullmatch(value) and not value.startswith("=?base64?"):
        return value
    return f"=?base64?{b64encode(value.encode()).decode()}?="


def _sse_data(lines: Iterator[bytes]) -> Iterator[str]:
    """The `data` of each server-sent event, until the stream ends."""
    data: list[str] = []
    for raw in lines:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield "\n".join(data)
            data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield "\n".join(data)


class Upstream:
    """The gateway's MCP endpoint, as the chessmaster; re-found and re-initialized after a restart."""

    def __init__(self, repo: repo_mod.Repo) -> None:
        self.repo = repo
        self.endpoint: Endpoint | None = None
        self.token = ""
        self.session_id: str | None = None
        self.protocol_version: str | None = None
        self.init_params: Message | None = None  # the client's initialize, replayed on reconnect
        self.generation = 0
        self.changed = threading.Condition()
        self._reconnect_lock = threading.Lock()

    # --- finding the gateway ------------------------------------------------------------------

    def resolve(self) -> None:
        """Find the running control plane (starting it if none runs) and its gateway."""
        from . import identity
        from .control import daemon

        info = daemon.read_info(self.repo)
        if info is None:
            info, started = daemon.up(self.repo)
            if started:
                _note(
                    f"started the control plane at {info.url} (pid {info.pid})", "serve.control_started", logging.INFO
                )
        if not info.gateway_url:
            raise ControlPlaneUnavailable(
                f"the control plane at {info.url} serves no MCP gateway",
                "restart it with a fracta version that has the gateway: fracta down && fracta up",
            )
        self.endpoint = _endpoint(info.gateway_url)
        # Inside an agent's process (its worktree may hold the wired .mcp.json / opencode.json),
        # act as that agent: an agent must never get the chessmaster's identity this way.
        self.token = os.environ.get("FRACTA_TOKEN") or identity.chessmaster_token(self.repo)

    def reconnect(self, seen: int) -> None:
        """Re-resolve and open a new session, unless another thread already did since `seen`."""
        with self._reconnect_lock:
            if self.generation != seen:
                return
            self.session_id = None
            self.resolve()
            if self.init_params is not None:
                replay = {"jsonrpc": "2.0", "id": f"fracta-serve-{seen + 1}", "method": "initialize"}
                self.exchange({**replay, "params": self.init_params}, lambda _msg: None)
                self.exchange({"jsonrpc": "2.0", "method": "notifications/initialized"}, lambda _msg: None)
            with self.changed:
                self.generation += 1
                self.changed.notify_all()

    # --- HTTP ---------------------------------------------------------------------------------

    def _headers(self, message: Message | None) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
        }
        method = message.get("method") if message else None
        params = message.get("params") if message else None
        meta = params.get("_meta") if isinstance(params, dict) else None
        modern = meta.get(PROTOCOL_VERSION_META) if isinstance(meta, dict) else None
        if isinstance(modern, str) and isinstance(method, str):
            # A 2026-era request stands alone: its version and routing headers come from the body.
            headers["MCP-Protocol-Version"] = modern
            headers["Mcp-Method"] = method
            name = params.get(NAME_BEARING.get(method, ""), None) if isinstance(params, dict) else None
            if isinstance(name, str):
                headers["Mcp-Name"] = _header_value(name)
            return headers
        if self.session_id and method != "initialize":
            headers["Mcp-Session-Id"] = self.session_id
        if self.protocol_version and method != "initialize":
            headers["MCP-Protocol-Version"] = self.protocol_version
        return headers

    def _open(self, method: str, message: Message | None, connect_timeout: float = CONNECT_TIMEOUT) -> Response:
        if self.endpoint is None:
            raise UpstreamLost("not connected yet")
        headers = self._headers(message)
        if message is None:
            headers["Accept"] = "text/event-stream"
        body = json.dumps(message).encode() if message is not None else b""
        try:
            return _http(self.endpoint, method, headers, body, connect_timeout)
        except (OSError, ValueError) as exc:
            raise UpstreamLost(f"cannot reach the gateway at {self.endpoint.url}: {exc}") from None

    def exchange(self, message: Message, emit: Emit) -> None:
        """POST one message; `emit` every message the gateway sends back for it."""
        resp = self._open("POST", message)
        request_id = message.get("id") if "method" in message else None
        try:
            if resp.status == 404 and self.session_id and message.get("method") != "initialize":
                raise UpstreamLost("the gateway no longer knows this session (it restarted)")
            if resp.status == 401:
                raise UpstreamLost("the gateway refused the token (it may have been renewed)")
            if resp.status == 202 or request_id is None:
                resp.read()
                return
            if resp.status >= 400:
                emit(_error_reply(request_id, resp.status, resp.read()))
                return
            if message.get("method") == "initialize":
                self._adopt_session(resp.headers.get("mcp-session-id"), message)
            if resp.headers.get("content-type", "").startswith("text/event-stream"):
                for data in _sse_data(resp.lines()):
                    if not data.strip():
                        continue  # a priming or keep-alive event
                    reply = json.loads(data)
                    self._note_version(message, reply)
                    emit(reply)
                    if isinstance(reply, dict) and reply.get("id") == request_id and "method" not in reply:
                        return
                raise UpstreamLost("the gateway closed the stream before answering")
            reply = json.loads(resp.read())
            self._note_version(message, reply)
            emit(reply)
        except (OSError, ValueError) as exc:
            raise UpstreamLost(f"the connection to the gateway broke: {exc}") from None
        finally:
            resp.close()

    def _adopt_session(self, session_id: str | None, message: Message) -> None:
        params = message.get("params")
        if isinstance(params, dict) and not str(message.get("id", "")).startswith("fracta-serve-"):
            self.init_params = params
        with self.changed:  # a new session: the GET-stream relay follows it
            self.session_id = session_id
            self.generation += 1
            self.changed.notify_all()

    def _note_version(self, message: Message, reply: Any) -> None:
        if message.get("method") == "initialize" and isinstance(reply, dict):
            version = (reply.get("result") or {}).get("protocolVersion")
            if isinstance(version, str):
                self.protocol_version = version

    def listen(self, emit: Emit, stopping: threading.Event) -> None:
        """Relay the gateway's GET stream (notifications outside any request) for each session."""
        seen = -1
        while not stopping.is_set():
            with self.changed:
                while self.generation == seen and not stopping.is_set():
                    self.changed.wait()
                seen = self.generation
            while self.session_id and self.generation == seen and not stopping.is_set():
                try:
                    resp = self._open("GET", None)
                except UpstreamLost:
                    break  # the next request reconnects; then this resumes
                try:
                    if resp.status != 200:
                        break  # no GET stream offered, or the session is gone
                    # A broken stream or a junk line ends this read; it reopens after the pause below.
                    with contextlib.suppress(OSError, ValueError):
                        for data in _sse_data(resp.lines()):
                            if data.strip():
                                emit(json.loads(data))
                finally:
                    resp.close()
                stopping.wait(1.0)

    def close(self) -> None:
        """End the upstream session politely (best effort, quick)."""
        if self.endpoint is None or not self.session_id:
            return
        with contextlib.suppress(UpstreamLost):
            self._open("DELETE", None, connect_timeout=1.0).close()


def _error_reply(request_id: Any, status: int, body: bytes) -> Message:
    """The gateway's JSON-RPC error for a failed POST, or one that says what went wrong."""
    text = body.decode(errors="replace").strip()[:300]
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict) and isinstance(error.get("code"), int) and isinstance(error.get("message"), str):
        return {"jsonrpc": "2.0", "id": request_id, "error": error}  # already a JSON-RPC error
    if isinstance(error, dict) and isinstance(error.get("message"), str):  # fracta's own error shape
        text = error["message"] + (f" ({error['hint']})" if error.get("hint") else "")
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": UNAVAILABLE, "message": f"HTTP {status}: {text}"}}


def _note(text: str, event: str, level: int = logging.WARNING) -> None:
    """Tell the AI CLI (on stderr, which it logs) and serve.log."""
    print(f"fracta serve: {text}", file=sys.stderr, flush=True)
    log.log(level, text, extra={"event": event})


class Bridge:
    """Reads JSON-RPC lines on stdin, forwards them upstream, writes every reply to stdout."""

    def __init__(self, upstream: Upstream, out: IO[bytes]) -> None:
        self.upstream = upstream
        self.out = out
        self._out_lock = threading.Lock()
        self.stopping = threading.Event()
        self._inflight: dict[threading.Thread, Any] = {}  # a request being forwarded -> its id

    def emit(self, message: Any) -> None:
        line = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        with self._out_lock, contextlib.suppress(OSError, ValueError):  # the client is gone: nothing to tell
            self.out.write(line)
            self.out.flush()

    def run(self, stdin: IO[bytes]) -> int:
        listener = threading.Thread(target=self.upstream.listen, args=(self.emit, self.stopping), daemon=True)
        listener.start()
        try:
            for line in stdin:
                if line.strip():
                    self.dispatch(line)
            # The client closed stdin: let requests already sent finish (briefly), then leave.
            deadline = time.monotonic() + DRAIN_TIMEOUT
            for thread in list(self._inflight):
                thread.join(max(0.0, deadline - time.monotonic()))
            for left in list(self._inflight.values()):  # nothing goes unanswered
                text = f"fracta serve is closing: stdin closed and no reply came within {DRAIN_TIMEOUT:.0f} s"
                self.emit({"jsonrpc": "2.0", "id": left, "error": {"code": UNAVAILABLE, "message": text}})
        finally:
            self.stopping.set()
            with self.upstream.changed:
                self.upstream.changed.notify_all()
            self.upstream.close()
        return 0

    def dispatch(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError as exc:
            self.emit({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": f"parse error: {exc}"}})
            return
        for item in message if isinstance(message, list) else [message]:
            if not isinstance(item, dict):
                continue
            if "method" in item and "id" in item:
                # Requests run concurrently (a long tool call must not hold up a ping or a cancel).
                thread = threading.Thread(target=self._forward_request, args=(item,), daemon=True)
                self._inflight[thread] = item["id"]
                thread.start()
            else:
                self.forward(item)  # notifications and replies keep their order

    def _forward_request(self, message: Message) -> None:
        try:
            self.forward(message)
        finally:
            self._inflight.pop(threading.current_thread(), None)

    def forward(self, message: Message) -> None:
        """Send one message upstream, reconnecting and retrying while the control plane comes back."""
        is_request = "method" in message and "id" in message
        deadline = time.monotonic() + RETRY_WINDOW
        problem: FractaError | UpstreamLost | None = None
        seen = self.upstream.generation  # the connection this message was first tried on
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                if self.upstream.endpoint is None or attempt > 1:
                    self.upstream.reconnect(seen)
                seen = self.upstream.generation
                self.upstream.exchange(message, self.emit)
                return
            except (UpstreamLost, FractaError) as exc:
                problem = exc
            if not is_request or time.monotonic() > deadline or isinstance(problem, ConfigError):
                break  # a bad fracta.yaml stays bad however often it is retried
            _note(f"{problem}; reconnecting (attempt {attempt})", "serve.reconnecting")
            if attempt > 1:  # the first retry is at once: a restarted control plane is usually there
                time.sleep(min(0.25 * 2 ** (attempt - 1), 2.0))
        if is_request:
            hint = getattr(problem, "hint", "") or "check `fracta status` and .fracta/logs/"
            text = f"fracta is unavailable: {problem} ({hint})"
            self.emit({"jsonrpc": "2.0", "id": message["id"], "error": {"code": UNAVAILABLE, "message": text}})
        else:
            _note(f"dropped a {message.get('method', 'reply')} message: {problem}", "serve.dropped")


def run(config: Path | None = None, stdin: IO[bytes] | None = None, stdout: IO[bytes] | None = None) -> int:
    """Bridge stdin/stdout to the gateway of the repo that `config` belongs to, until stdin closes
    (or SIGTERM/SIGINT); its start and its end are logged in serve.log."""
    from . import logs

    repo = find_repo(config)
    logs.setup(repo.logs_dir, "serve", foreground=False)
    if threading.current_thread() is threading.main_thread():
        logs.raise_on_signals()  # a signal ends the bridge through its exit line
    with logs.exit_logged("serve") as ending:
        log.info("bridge started", extra={"event": "serve.started", "pid": os.getpid()})
        bridge = Bridge(Upstream(repo), stdout or sys.stdout.buffer)
        ending.code = bridge.run(stdin or sys.stdin.buffer)
    return ending.code
