"""The web view's routes, in front of the REST API's bearer-token guard (they have their own):

  GET /ui?token=T      trade a one-time link token for a session cookie, redirect to /ui (403 if used)
  GET /ui              the page (401 without a session)
  GET /ui/fleet        the fleet fragment the script swaps in on each event
  GET /ui/agents/NAME  one agent's fragment
  GET /ui/static/F     the script and the stylesheet (package data)

The fragments call the same core functions as `fracta list` and the REST routes. Everything else
passes through to the API, where the session cookie stands for the chessmaster (sessions.py).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from .. import branches, correspondence, liveness, results
from ..errors import AgentNotFound, FractaError
from ..repo import Repo
from . import render
from .sessions import Session, Sessions, cookie_name

T = TypeVar("T")
PAGE = "/ui"
STATIC = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
# The page runs only its own script and style, in no frame, and sends no Referer (its URL once held a token).
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


class Gate:
    """ASGI: /ui and below to the web view's routes, everything else on to the API."""

    def __init__(self, app: Any, repo: Repo, sessions: Sessions) -> None:
        self.app = app
        self.pages = build(repo, sessions)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path == PAGE or path.startswith(PAGE + "/"):
            await self.pages(scope, receive, send)
        else:
            await self.app(scope, receive, send)


class Pages:
    def __init__(self, repo: Repo, sessions: Sessions) -> None:
        self.repo = repo
        self.sessions = sessions

    async def page(self, request: Request) -> Response:
        token = request.query_params.get("token")
        if token is not None:
            return self._redeem(request, token)
        session = self.sessions.session(request.scope)
        if session is None:
            return _notice(401, "Not signed in", "This browser has no session with this control plane.")
        return await _threaded(self._page, session)

    def _redeem(self, request: Request, token: str) -> Response:
        session = self.sessions.redeem(token)
        if session is None:
            used = "A fracta ui link works once, for ten minutes; this one is used or expired."
            return _notice(403, "This link is used up", used)
        response = RedirectResponse(PAGE, 303, headers=HEADERS)
        name = cookie_name(request.scope)
        response.set_cookie(name, session.id, httponly=True, samesite="strict", path="/")
        return response

    def _page(self, session: Session) -> Response:
        last = self.repo.store.events.tail(1)
        cursor = last[-1].end if last else 0
        html = render.page(str(self.repo.root), render.fleet(self._fleet_data()), session.csrf, cursor)
        return HTMLResponse(html, headers=HEADERS)

    def _fleet_data(self) -> dict[str, Any]:
        found, problems = liveness.checked(self.repo)
        return results.agent_list(self.repo, found, problems)

    async def fleet(self, request: Request) -> Response:
        if self.sessions.session(request.scope) is None:
            return _notice(401, "Not signed in", "The session ended (the control plane restarted?).")
        html = await _threaded(lambda: render.fleet(self._fleet_data()))
        return HTMLResponse(html, headers=HEADERS)

    async def agent(self, request: Request) -> Response:
        if self.sessions.session(request.scope) is None:
            return _notice(401, "Not signed in", "The session ended (the control plane restarted?).")
        try:
            html = await _threaded(self._agent, request.path_params["name"])
        except AgentNotFound as exc:
            return HTMLResponse(f'<p class="gone">{render.esc(exc.message)}</p>', 404, headers=HEADERS)
        except FractaError as exc:
            return HTMLResponse(f'<p class="warn">{render.esc(exc.message)}</p>', exc.http_status, headers=HEADERS)
        return HTMLResponse(html, headers=HEADERS)

    def _agent(self, name: str) -> str:
        agent = liveness.load(self.repo, name)
        view = results.agent_view(self.repo, agent)
        return render.detail(view, branches.status(self.repo, name), correspondence.of(self.repo, name))

    def static(self, request: Request) -> Response:
        name = request.path_params["file"]
        if name not in STATIC:
            return Response("not found", 404, media_type="text/plain")
        body = resources.files(__package__).joinpath("static", name).read_bytes()
        return Response(body, media_type=STATIC[name], headers={"Cache-Control": "max-age=3600"})


def build(repo: Repo, sessions: Sessions) -> Starlette:
    pages = Pages(repo, sessions)
    return Starlette(
        routes=[
            Route(PAGE, pages.page, methods=["GET"]),
            Route(PAGE + "/fleet", pages.fleet, methods=["GET"]),
            Route(PAGE + "/agents/{name}", pages.agent, methods=["GET"]),
            Route(PAGE + "/static/{file}", pages.static, methods=["GET"]),
        ]
    )


def _notice(status: int, title: str, body: str) -> HTMLResponse:
    return HTMLResponse(render.notice(title, body), status, headers=HEADERS)


async def _threaded(fn: Callable[..., T], *args: Any) -> T:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args)
