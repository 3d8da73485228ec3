"""The control plane's JSON REST API: each route authenticates, calls one core function, renders."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from .. import agents, events, lifecycle, mailbox, peek, project, results
from ..errors import FractaError, InvalidInput
from ..identity import Caller, resolve
from ..repo import Repo
from . import openapi

MAX_BODY = 1024 * 1024


class Api:
    """Routes bound to one repo; `kick` wakes the spawner after lifecycle changes."""

    def __init__(self, repo: Repo, kick: Callable[[], None]) -> None:
        self.repo = repo
        self.kick = kick

    # --- plumbing -----------------------------------------------------------------------------

    def caller(self, request: Request) -> Caller:
        caller = request.scope.get("fracta.caller")
        assert isinstance(caller, Caller)
        return caller

    async def body(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise InvalidInput(f"request body is {len(raw)} bytes; the limit is {MAX_BODY}")
        if not raw:
            return {}
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InvalidInput("request body is not valid JSON", "send a JSON object") from None
        if not isinstance(data, dict):
            raise InvalidInput("request body must be a JSON object")
        return data

    # --- routes -------------------------------------------------------------------------------

    def health(self, request: Request) -> Response:
        return JSONResponse({"version": results.VERSION, "ok": True, "root": str(self.repo.root)})

    def list_agents(self, request: Request) -> Response:
        found, problems = agents.list_all(self.repo)
        return JSONResponse(results.agent_list(self.repo, found, problems))

    def get_agent(self, request: Request) -> Response:
        agent = agents.load(self.repo, request.path_params["name"])
        return JSONResponse({"version": results.VERSION, "agent": results.agent_view(self.repo, agent)})

    async def spawn(self, request: Request) -> Response:
        self.caller(request).require_chessmaster("spawn agents")
        data = await self.body(request)
        req = lifecycle.SpawnRequest(
            name=_text(data, "name", required=True) or "",
            runtime=_text(data, "runtime") or "command",
            prompt=_text(data, "prompt"),
            args=tuple(_strings(data, "args")),
            base=_text(data, "base"),
            workspace=Path(ws) if (ws := _text(data, "workspace")) else None,
        )
        agent = await _threaded(lifecycle.spawn, self.repo, req)
        self.kick()
        return JSONResponse({"version": results.VERSION, "agent": results.agent_view(self.repo, agent)}, 201)

    async def kill(self, request: Request) -> Response:
        self.caller(request).require_chessmaster("kill agents")
        force = request.query_params.get("force", "false").lower() in {"1", "true", "yes"}
        result = await _threaded(lifecycle.kill, self.repo, request.path_params["name"], force=force)
        self.kick()
        return JSONResponse(results.killed(result))

    async def merge(self, request: Request) -> Response:
        self.caller(request).require_chessmaster("merge")
        from .. import merge

        data = await self.body(request)
        notify = bool(data.get("notify", False))
        result = await _threaded(merge.merge, self.repo, request.path_params["name"], notify=notify, cwd=self.repo.root)
        return JSONResponse(results.merged(result))

    async def say(self, request: Request) -> Response:
        data = await self.body(request)
        caller = self.caller(request)
        sender = _text(data, "from") or caller.name
        caller.require_self(sender, "send messages")
        sent = await _threaded(
            mailbox.send,
            self.repo,
            sender,
            _text(data, "to", required=True) or "",
            _text(data, "body", required=True) or "",
            subject=_text(data, "subject"),
            reply_to=_text(data, "reply_to"),
        )
        self.kick()
        return JSONResponse(results.sent(sent), 201)

    async def inbox(self, request: Request) -> Response:
        name = request.path_params["name"]
        self.caller(request).require_self(name, "read the inbox")
        data = await self.body(request)
        box = await _threaded(mailbox.read, self.repo, name, include_read=bool(data.get("all", False)))
        return JSONResponse(results.inbox(name, box))

    async def intent(self, request: Request) -> Response:
        name = request.path_params["name"]
        if request.method == "GET":
            return JSONResponse(results.intent(agents.load(self.repo, name)))
        self.caller(request).require_self(name, "set the intent")
        data = await self.body(request)
        agent = await _threaded(project.set_intent, self.repo, name, _text(data, "intent", required=True) or "")
        return JSONResponse(results.intent(agent))

    def peek(self, request: Request) -> Response:
        n = _int_param(request, "n", 20, 0, 10_000)
        since = request.query_params.get("since")
        start = _int_param(request, "since", 0, 0, 2**62) if since is not None else None
        return JSONResponse(peek.peek(self.repo, request.path_params["name"], n=n, since=start).to_dict())

    def progress(self, request: Request) -> Response:
        from .. import progress

        progress.refresh(self.repo)
        return PlainTextResponse(self.repo.progress_path.read_text(), media_type="text/markdown")

    def events(self, request: Request) -> Response:
        since = _int_param(request, "since", 0, 0, 2**62)
        limit = _int_param(request, "limit", 1000, 1, 10_000)
        found = list(events.read(self.repo, since=since, limit=limit))
        nxt = found[-1].end if found else since
        return JSONResponse(
            {"version": results.VERSION, "events": [e.data | {"offset": e.offset} for e in found], "next": nxt}
        )

    def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi.document())


async def _threaded(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Core functions block (fsync, git): run them off the event loop."""
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args, **kwargs)


def _text(data: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise InvalidInput(f"missing field {key!r}", f"send {key} in the JSON body")
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"field {key!r} must be a string")
    return value


def _strings(data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"field {key!r} must be a list of strings")
    return value


def _int_param(request: Request, key: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"query parameter {key!r} must be an integer, not {raw!r}") from None
    if not low <= value <= high:
        raise InvalidInput(f"query parameter {key!r} must be between {low} and {high}")
    return value


class AuthMiddleware:
    """Every request needs a valid bearer token; the caller is derived from it (pure ASGI)."""

    def __init__(self, app: Any, repo: Repo) -> None:
        self.app = app
        self.repo = repo

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        auth = headers.get(b"authorization", b"").decode("latin-1")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        caller = resolve(self.repo, token)
        if caller is None:
            response = JSONResponse(
                {
                    "version": results.VERSION,
                    "error": {
                        "type": "Unauthorized",
                        "message": "missing or unknown token",
                        "hint": "send Authorization: Bearer <token> (the chessmaster's is in .fracta/token)",
                    },
                },
                401,
                headers={"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        scope["fracta.caller"] = caller
        await self.app(scope, receive, send)


def _error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FractaError)
    return JSONResponse(results.error(exc), exc.http_status)


def build(repo: Repo, kick: Callable[[], None]) -> Starlette:
    api = Api(repo, kick)
    routes = [
        Route("/v1/health", api.health),
        Route("/v1/agents", api.list_agents, methods=["GET"]),
        Route("/v1/agents", api.spawn, methods=["POST"]),
        Route("/v1/agents/{name}", api.get_agent, methods=["GET"]),
        Route("/v1/agents/{name}", api.kill, methods=["DELETE"]),
        Route("/v1/agents/{name}/merge", api.merge, methods=["POST"]),
        Route("/v1/agents/{name}/inbox", api.inbox, methods=["POST"]),
        Route("/v1/agents/{name}/intent", api.intent, methods=["GET", "PUT"]),
        Route("/v1/agents/{name}/peek", api.peek, methods=["GET"]),
        Route("/v1/messages", api.say, methods=["POST"]),
        Route("/v1/progress", api.progress, methods=["GET"]),
        Route("/v1/events", api.events, methods=["GET"]),
        Route("/openapi.json", api.openapi, methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(AuthMiddleware, repo=repo)],
        exception_handlers={FractaError: _error},
    )
