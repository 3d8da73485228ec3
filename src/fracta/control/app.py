"""The control plane's JSON REST API: each route authenticates, calls one core function, renders."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from .. import agents, clock, delivery, events, lifecycle, liveness, mailbox, messaging, peek, project, results
from ..contracts import base as contracts
from ..contracts import requests as rq
from ..errors import EXIT_USAGE, FractaError, InvalidInput
from ..identity import AuthMiddleware, Caller, caller_of
from ..repo import Repo
from ..ui import gate
from ..ui.sessions import Sessions
from . import openapi
from .changes import Changes

M = TypeVar("M", bound=contracts.Contract)
MAX_BODY = 1024 * 1024
POLL = 0.2  # seconds between looks at events.jsonl while a stream is idle, when nothing pushes
# With changes pushed (PostgreSQL's notifications; with files, the control plane's watch on
# events.jsonl), an idle stream looks again on a change, or this often (a ceiling: closing is
# checked between waits).
POLL_PUSHED = 1.0
KEEPALIVE = 15.0  # seconds of silence before a comment line, which also notices a gone client


class BodyTooLarge(FractaError):
    exit_code = EXIT_USAGE
    http_status = 413


class Api:
    """Routes bound to one repo; `kick` wakes the spawner after lifecycle changes.

    `start_queued`, when given, starts queued missions at once in the calling thread (a spawn
    then does not wait for the spawner's thread to wake). `closing` says the server is shutting
    down, so that live event streams end instead of holding the shutdown up.
    """

    def __init__(
        self,
        repo: Repo,
        kick: Callable[[], None],
        closing: Callable[[], bool] | None = None,
        start_queued: Callable[[], None] | None = None,
        changes: Changes | None = None,
        sessions: Sessions | None = None,
    ) -> None:
        self.repo = repo
        self.kick = kick
        self.closing = closing or (lambda: False)
        self.start_queued = start_queued or (lambda: None)
        self.changes = changes or Changes()
        self.sessions = sessions or Sessions()

    # --- plumbing -----------------------------------------------------------------------------

    def caller(self, request: Request) -> Caller:
        return caller_of(request.scope)

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

    async def args(self, request: Request, model: type[M], **query: Any) -> M:
        """The operation's input: path parameters, the given query values and the JSON body, as `model`."""
        data = await self.body(request) if request.method in {"POST", "PUT"} else {}
        outside = {**request.path_params, **{k: v for k, v in query.items() if v is not None}}
        clash = sorted(set(data) & set(outside))
        if clash:
            raise InvalidInput(f"the request body does not take {clash[0]!r}", f"{clash[0]} goes in the URL")
        return contracts.parse(model, {**data, **outside}, where=f"{request.method} {request.url.path}")

    # --- routes -------------------------------------------------------------------------------

    def health(self, request: Request) -> Response:
        return JSONResponse({"version": results.VERSION, "ok": True, "root": str(self.repo.root)})

    def list_agents(self, request: Request) -> Response:
        found, problems = liveness.checked(self.repo)
        return JSONResponse(results.agent_list(self.repo, found, problems))

    async def get_agent(self, request: Request) -> Response:
        args = await self.args(request, rq.AgentName)
        agent = liveness.load(self.repo, args.name)
        return JSONResponse({"version": results.VERSION, "agent": results.agent_view(self.repo, agent)})

    async def spawn(self, request: Request) -> Response:
        self.caller(request).require_chessmaster("spawn agents")
        args = await self.args(request, rq.Spawn)
        agent = await _threaded(self._spawn, args.request())
        self.kick()
        return JSONResponse({"version": results.VERSION, "agent": results.agent_view(self.repo, agent)}, 201)

    def _spawn(self, req: lifecycle.SpawnRequest) -> agents.Agent:
        agent = lifecycle.spawn(self.repo, req)
        self.start_queued()  # the new agent starts now if a slot is free, before we answer
        return agents.load(self.repo, agent.name) if agent.status == agents.Status.QUEUED else agent

    async def kill(self, request: Request) -> Response:
        self.caller(request).require_chessmaster("kill agents")
        args = await self.args(request, rq.Kill, force=_query_flag(request, "force"))
        result = await _threaded(lifecycle.kill, self.repo, args.name, force=args.force)
        self.kick()
        return JSONResponse(results.killed(result))

    async def merge(self, request: Request) -> Response:
        self.caller(request).require_chessmaster("merge")
        from .. import merge

        args = await self.args(request, rq.Merge)
        result = await _threaded(merge.merge, self.repo, args.name, notify=args.notify, cwd=self.repo.root)
        return JSONResponse(results.merged(result))

    async def merge_preview(self, request: Request) -> Response:
        from .. import merge

        args = await self.args(request, rq.AgentName)
        found = await _threaded(merge.preview, self.repo, args.name)
        return JSONResponse(results.merge_preview(found))

    async def branch(self, request: Request) -> Response:
        from .. import branches

        args = await self.args(request, rq.AgentName)
        found = await _threaded(branches.status, self.repo, args.name)
        return JSONResponse(results.branch_state(found))

    async def messages(self, request: Request) -> Response:
        from .. import correspondence

        args = await self.args(request, rq.AgentName)
        self.caller(request).require_self(args.name, "follow the messages")
        found = await _threaded(correspondence.of, self.repo, args.name)
        return JSONResponse(results.correspondence(found))

    async def ui_login(self, request: Request) -> Response:
        self.caller(request).require_chessmaster("open the web view")
        await self.args(request, rq.NoInput)
        token, expires = self.sessions.link()
        url = f"{str(request.base_url).rstrip('/')}{gate.PAGE}?token={token}"
        return JSONResponse({"version": results.VERSION, "url": url, "expires_at": clock.stamp(expires)}, 201)

    async def say(self, request: Request) -> Response:
        args = await self.args(request, rq.Send)
        caller = self.caller(request)
        sender = args.sender or caller.name
        caller.require_self(sender, "send messages")
        done = await _threaded(
            messaging.send,
            self.repo,
            sender,
            args.to,
            args.message,
            subject=args.subject,
            reply_to=args.reply_to,
            key=_idempotency_key(request, args.idempotency_key),
            kick=self.kick,
        )
        self.kick()
        return JSONResponse(results.sent(done.sent, done.undeliverable), 201)

    async def inbox(self, request: Request) -> Response:
        args = await self.args(request, rq.ReadInbox)
        self.caller(request).require_self(args.name, "read the inbox")
        box = await _threaded(mailbox.read, self.repo, args.name, include_read=args.all, ack=args.ack)
        return JSONResponse(results.inbox(args.name, box))

    async def sent(self, request: Request) -> Response:
        args = await self.args(request, rq.SentBy)
        self.caller(request).require_self(args.name, "follow the messages")
        found = await _threaded(delivery.sent, self.repo, args.name)
        return JSONResponse(results.sent_states(args.name, found))

    async def ack(self, request: Request) -> Response:
        args = await self.args(request, rq.Acknowledge)
        self.caller(request).require_self(args.name, "acknowledge messages")
        count = await _threaded(mailbox.acknowledge, self.repo, args.name, args.receipt)
        return JSONResponse({"version": results.VERSION, "agent": args.name, "acknowledged": count})

    async def intent(self, request: Request) -> Response:
        if request.method == "GET":
            shown = await self.args(request, rq.AgentName)
            return JSONResponse(results.intent(agents.load(self.repo, shown.name)))
        args = await self.args(request, rq.SetIntent)
        self.caller(request).require_self(args.name, "set the intent")
        agent = await _threaded(project.set_intent, self.repo, args.name, args.intent)
        return JSONResponse(results.intent(agent))

    async def peek(self, request: Request) -> Response:
        args = await self.args(request, rq.ReadOutput, n=_int_param(request, "n"), since=_int_param(request, "since"))
        return JSONResponse(peek.peek(self.repo, args.name, n=args.n, since=args.since).to_dict())

    def progress(self, request: Request) -> Response:
        from .. import progress

        progress.refresh(self.repo)
        return PlainTextResponse(self.repo.progress_path.read_text(), media_type="text/markdown")

    async def events(self, request: Request) -> Response:
        """The event log (.fracta/events.jsonl) from byte offset `since`, in one of two forms.

        JSON (the default, and whenever Accept does not ask for text/event-stream): one page,
        {"version", "events": [record + "offset"], "next": offset to ask for next}.
        Server-sent events (Accept: text/event-stream): a live stream that follows the log. Each
        event has `id:` the byte offset just past it (the cursor to resume from), `event:` its
        name and `data:` its JSON record with "offset". Reconnecting with Last-Event-ID (as
        EventSource does) resumes right after that event. Comment lines keep an idle stream alive;
        the stream ends when the control plane shuts down.
        In both forms a Last-Event-ID header, when sent, is the cursor and wins over ?since=.
        """
        named = None if "named" not in request.query_params else _query_flag(request, "named")
        args = await self.args(
            request,
            rq.ReadEvents,
            since=_int_param(request, "since"),
            limit=_int_param(request, "limit"),
            named=named,
        )
        last = request.headers.get("last-event-id")
        if last is not None:  # the cursor, winning over ?since= (which must still be valid)
            resume = {"since": _int_value("header Last-Event-ID", last), "limit": args.limit, "named": args.named}
            args = contracts.parse(rq.ReadEvents, resume, where="the header Last-Event-ID")
        if "text/event-stream" in request.headers.get("accept", ""):
            headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
            stream = self._follow(args.since, args.named)
            return StreamingResponse(stream, media_type="text/event-stream", headers=headers)
        found = list(events.read(self.repo, since=args.since, limit=args.limit))
        nxt = found[-1].end if found else args.since
        return JSONResponse(
            {"version": results.VERSION, "events": [e.data | {"offset": e.offset} for e in found], "next": nxt}
        )

    async def _follow(self, offset: int, named: bool = True) -> AsyncIterator[str]:
        import anyio

        yield "retry: 1000\n\n"  # also sends the headers at once, so a client knows it is connected
        quiet = 0.0
        seen = self.changes.version
        while not self.closing():
            found = await _threaded(_page, self.repo, offset)
            for event in found:
                data = json.dumps(event.data | {"offset": event.offset}, separators=(",", ":"))
                name = str(event.data.get("event") or "event").replace("\n", " ")
                kind = f"event: {name}\n" if named else ""
                yield f"id: {event.end}\n{kind}data: {data}\n\n"
                offset = event.end
            if found:
                quiet = 0.0
                continue
            if self.changes.pushed:  # the store says when an event lands: sleep until then
                before = time.monotonic()
                seen = await _threaded(self.changes.wait, seen, POLL_PUSHED)
                quiet += time.monotonic() - before
            else:
                await anyio.sleep(POLL)
                quiet += POLL
            if quiet >= KEEPALIVE:
                quiet = 0.0
                yield ": keepalive\n\n"

    def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi.document())


async def _threaded(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Core functions block (fsync, git): run them off the event loop."""
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args, **kwargs)


def _idempotency_key(request: Request, field: str | None) -> str | None:
    """The Idempotency-Key header or the idempotency_key field (the same value if both are sent)."""
    header = request.headers.get("idempotency-key")
    if header is not None and field is not None and header != field:
        raise InvalidInput(
            "the Idempotency-Key header and the idempotency_key field differ", "send the key in one of them"
        )
    return header if header is not None else field


def _query_flag(request: Request, key: str) -> bool:
    raw = request.query_params.get(key, "false").lower()
    if raw not in {"1", "true", "yes", "0", "false", "no"}:
        raise InvalidInput(f"query parameter {key!r} must be true or false, not {raw[:40]!r}")
    return raw in {"1", "true", "yes"}


def _page(repo: Repo, since: int) -> list[events.Event]:
    return list(events.read(repo, since=since, limit=500))


def _int_param(request: Request, key: str) -> int | None:
    """An integer query parameter, or None if absent (its bounds are the operation's model's)."""
    raw = request.query_params.get(key)
    return None if raw is None else _int_value(f"query parameter {key!r}", raw)


def _int_value(what: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"{what} must be an integer, not {raw[:40]!r}") from None


class BodyLimitMiddleware:
    """Refuse a request body over `limit` bytes with 413 while it arrives, not after buffering it all."""

    def __init__(self, app: Any, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = BodyTooLarge(
            f"the request body is larger than the limit of {self.limit} bytes", "send a smaller JSON body"
        )
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await JSONResponse(results.error(too_large), 413)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise too_large  # rendered as 413 by the FractaError handler, the route never sees it
            return message

        await self.app(scope, counted, send)


def _error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FractaError)
    return JSONResponse(results.error(exc), exc.http_status)


def build(
    repo: Repo,
    kick: Callable[[], None],
    closing: Callable[[], bool] | None = None,
    start_queued: Callable[[], None] | None = None,
    changes: Changes | None = None,
    sessions: Sessions | None = None,
) -> Starlette:
    sessions = sessions or Sessions()
    api = Api(repo, kick, closing, start_queued, changes, sessions)
    routes = [
        Route("/v1/health", api.health),
        Route("/v1/agents", api.list_agents, methods=["GET"]),
        Route("/v1/agents", api.spawn, methods=["POST"]),
        Route("/v1/agents/{name}", api.get_agent, methods=["GET"]),
        Route("/v1/agents/{name}", api.kill, methods=["DELETE"]),
        Route("/v1/agents/{name}/merge", api.merge, methods=["POST"]),
        Route("/v1/agents/{name}/merge/preview", api.merge_preview, methods=["GET"]),
        Route("/v1/agents/{name}/branch", api.branch, methods=["GET"]),
        Route("/v1/agents/{name}/messages", api.messages, methods=["GET"]),
        Route("/v1/ui/login", api.ui_login, methods=["POST"]),
        Route("/v1/agents/{name}/inbox", api.inbox, methods=["POST"]),
        Route("/v1/agents/{name}/inbox/ack", api.ack, methods=["POST"]),
        Route("/v1/agents/{name}/sent", api.sent, methods=["GET"]),
        Route("/v1/agents/{name}/intent", api.intent, methods=["GET", "PUT"]),
        Route("/v1/agents/{name}/peek", api.peek, methods=["GET"]),
        Route("/v1/messages", api.say, methods=["POST"]),
        Route("/v1/progress", api.progress, methods=["GET"]),
        Route("/v1/events", api.events, methods=["GET"]),
        Route("/openapi.json", api.openapi, methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[
            # The web view's pages answer before the bearer-token guard (they have their own); its
            # script then calls the routes below with its session cookie.
            Middleware(gate.Gate, repo=repo, sessions=sessions),
            Middleware(AuthMiddleware, repo=repo, sessions=sessions),
            Middleware(BodyLimitMiddleware, limit=MAX_BODY),
        ],
        exception_handlers={FractaError: _error},
    )
