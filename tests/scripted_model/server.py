"""The scripted model server: one HTTP server on 127.0.0.1, many agents routed by path.

`http://127.0.0.1:P/a/<name>/v1/messages` is agent `<name>`'s Anthropic endpoint, `.../v1/responses`
its Responses endpoint and `.../v1/chat/completions` its Chat Completions endpoint; paths without
`/a/<name>` belong to agent `default`. Every request is recorded on its agent, headers included.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from . import anthropic, chat, responses
from .script import WAIT_FOR_MCP, Conversation, NoSuchTool, Reply, Step, ToolResult, Usage, next_reply
from .sse import Body, json_body

T = TypeVar("T")

_APIS = {
    "/v1/messages": ("anthropic", anthropic.parse, anthropic.render, "msg_", "toolu_"),
    "/v1/responses": ("responses", responses.parse, responses.render, "resp_", "call_"),
    "/v1/chat/completions": ("chat", chat.parse, chat.render, "chatcmpl-", "call_"),
}


@dataclass(frozen=True)
class Request:
    """One request as it reached the server."""

    agent: str
    method: str
    path: str  # below the agent's base URL, query string included
    headers: dict[str, str]  # names in lower case
    body: Any  # parsed JSON, or None
    api: str | None = None  # "anthropic", "responses" or "chat" for model calls
    conversation: Conversation | None = None
    reply: Reply | None = None

    @property
    def credential(self) -> str | None:
        """The API key or bearer token the client sent (`x-api-key` or `Authorization: Bearer`)."""
        if "x-api-key" in self.headers:
            return self.headers["x-api-key"]
        auth = self.headers.get("authorization", "")
        return auth.split(" ", 1)[1] if auth.lower().startswith("bearer ") else auth or None


@dataclass
class Agent:
    """One agent's script and everything its CLI sent."""

    name: str
    base_url: str  # for ANTHROPIC_BASE_URL
    steps: list[Step] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    side_text: str = "Scripted title"  # the answer to requests that offer no tools
    _model: ScriptedModel | None = field(default=None, repr=False)

    @property
    def openai_base_url(self) -> str:
        """For Codex's `base_url` and OpenCode's `baseURL` (they append `/responses`, `/chat/completions`)."""
        return self.base_url + "/v1"

    @property
    def requests(self) -> list[Request]:
        model = self._model
        assert model
        return model._snapshot(lambda: [r for r in model._requests if r.agent == self.name])

    def model_calls(self) -> list[Request]:
        """The requests that were model calls offering tools (the scripted turns)."""
        return [r for r in self.requests if r.conversation and r.conversation.tools]

    def tool_calls(self) -> list[tuple[str, dict[str, Any]]]:
        """The tool calls the script made: (tool's full name as offered, arguments)."""
        return [
            (r.reply.tool.full_name, json.loads(r.reply.arguments))
            for r in self.requests
            if r.reply and r.reply.tool and r.reply.tool.name != WAIT_FOR_MCP
        ]

    def tool_results(self) -> list[ToolResult]:
        """Every tool result the CLI sent back, in order, each once."""
        seen: dict[str, ToolResult] = {}
        for r in self.requests:
            for result in r.conversation.tool_results if r.conversation else []:
                seen.setdefault(result.call_id, result)
        return list(seen.values())

    def results_of(self, tool: str) -> list[ToolResult]:
        """The results of the script's calls to `tool` (a name suffix, as in a `call` step)."""
        ids = {
            r.reply.call_id
            for r in self.requests
            if r.reply
            and r.reply.tool
            and (r.reply.tool.full_name == tool or r.reply.tool.full_name.endswith("_" + tool))
        }
        return [result for result in self.tool_results() if result.call_id in ids]

    def credentials(self) -> set[str]:
        """Every API key or bearer token that reached this agent's endpoints."""
        return {r.credential for r in self.requests if r.api and r.credential}

    def wait_for(self, what: str, check: Callable[[Agent], T], timeout: float = 60.0) -> T:
        """Wait until `check(self)` is truthy and return it (a liveness bound, not a timing assertion)."""
        assert self._model
        deadline = time.monotonic() + timeout
        with self._model._changed:
            while True:
                value = check(self)
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"scripted model: gave up waiting for {what} on agent {self.name!r}")
                self._model._changed.wait(min(left, 0.5))


class ScriptedModel:
    """A model server that answers from per-agent scripts. Use as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._agents: dict[str, Agent] = {}
        self._requests: list[Request] = []
        self.errors: list[str] = []  # what the server could not answer as scripted
        self._changed = threading.Condition()
        self._http = ThreadingHTTPServer((host, port), _handler(self))
        self._http.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._http.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ScriptedModel:
        self._thread = threading.Thread(
            target=self._http.serve_forever, args=(0.05,), name="scripted-model", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread:
            self._http.shutdown()
            self._thread.join()
            self._thread = None
        self._http.server_close()

    def __enter__(self) -> ScriptedModel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def agent(self, name: str, steps: list[Step] | None = None) -> Agent:
        """Agent `name` (created on first use); `steps`, when given, replace its script."""
        with self._changed:
            found = self._agents.get(name)
            if found is None:
                found = Agent(name, f"{self.url}/a/{name}", _model=self)
                self._agents[name] = found
            if steps is not None:
                found.steps = list(steps)
            return found

    @property
    def requests(self) -> list[Request]:
        return self._snapshot(lambda: list(self._requests))

    def _snapshot(self, take: Callable[[], T]) -> T:
        with self._changed:
            return take()

    def _record(self, request: Request, error: str | None = None) -> None:
        with self._changed:
            self._requests.append(request)
            if error:
                self.errors.append(f"{request.agent}: {request.method} {request.path}: {error}")
            self._changed.notify_all()

    def answer(self, agent_name: str, method: str, path: str, headers: dict[str, str], raw: bytes) -> Body:
        """Answer one request and record it (the HTTP handler's whole job, callable without HTTP)."""
        agent = self.agent(agent_name)
        route = urlsplit(path).path.rstrip("/")
        if not route.startswith("/v1"):
            route = "/v1" + route  # base URLs given without /v1
        body: Any = None
        with contextlib.suppress(ValueError):
            body = json.loads(raw) if raw else None
        base = Request(agent_name, method, path, headers, body)
        if method in ("HEAD", "GET") and route == "/v1":
            self._record(base)
            return Body(200, "text/plain", b"")
        if method == "POST" and route == "/v1/messages/count_tokens" and isinstance(body, dict):
            self._record(base)
            return anthropic.count_tokens(body)
        if method != "POST" or route not in _APIS or not isinstance(body, dict):
            self._record(base, "not a model call this server knows")
            return json_body(
                {"error": {"type": "not_found_error", "message": f"scripted model: no {method} {path}"}}, 404
            )
        api, parse, render, id_prefix, call_prefix = _APIS[route]
        conv = parse(body)
        call_id = call_prefix + uuid.uuid4().hex[:24]
        with self._changed:
            steps = list(agent.steps)
        try:
            reply = next_reply(steps, conv, agent.side_text, call_id)
            error = None
        except NoSuchTool as exc:
            reply, error = Reply(text=f"scripted model error: {exc}"), str(exc)
        self._record(Request(agent_name, method, path, headers, body, api, conv, reply), error)
        return render(reply, conv, agent.usage, id_prefix + uuid.uuid4().hex[:24])


def _handler(model: ScriptedModel) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive; every answer carries Content-Length

        def _serve(self) -> None:
            agent, path = "default", self.path
            parts = path.split("/", 3)
            if len(parts) >= 3 and parts[1] == "a" and parts[2]:
                agent, path = unquote(parts[2].split("?")[0]), "/" + (parts[3] if len(parts) > 3 else "")
            headers = {k.lower(): v for k, v in self.headers.items()}
            answer = model.answer(agent, self.command, path, headers, self._body())
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.data)))
            if answer.content_type == "text/event-stream":
                self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer.data)

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                data = b""
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    data += self.rfile.read(size)
                    self.rfile.readline()
                self.rfile.readline()
            else:
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Content-Encoding", "").lower() == "gzip":
                data = gzip.decompress(data)
            return data

        do_GET = do_HEAD = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
