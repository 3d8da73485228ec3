"""Who is calling: the server derives the caller from the bearer token, never from the request."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from . import names
from .errors import Forbidden
from .repo import Repo


@dataclass(frozen=True)
class Caller:
    name: str  # an agent name, or "chessmaster"

    @property
    def is_chessmaster(self) -> bool:
        return self.name == names.CHESSMASTER

    def require_chessmaster(self, action: str) -> None:
        if not self.is_chessmaster:
            raise Forbidden(f"agent {self.name!r} may not {action}", "only the chessmaster may do this")

    def require_self(self, name: str, action: str) -> None:
        if not self.is_chessmaster and name != self.name:
            raise Forbidden(
                f"agent {self.name!r} may not {action} as or for {name!r}",
                f"agents act only as themselves ({self.name})",
            )


def chessmaster_token(repo: Repo) -> str:
    return repo.store.tokens.chessmaster()


def resolve(repo: Repo, token: str) -> Caller | None:
    """The caller owning `token`, or None. A removed agent's token stops working at once."""
    name = repo.store.tokens.resolve(token) if token else None
    return Caller(name) if name is not None else None


def bearer_token(scope: Mapping[str, Any]) -> str:
    """The bearer token of an ASGI request's Authorization header, or ""."""
    for key, value in scope.get("headers") or ():
        if key == b"authorization":
            auth = value.decode("latin-1")
            return auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    return ""


class SessionCheck(Protocol):
    def caller(self, scope: Mapping[str, Any]) -> Caller | None:
        """The caller a request's session stands for (the web view's cookie), or None."""
        ...


class AuthMiddleware:
    """ASGI guard shared by the REST API and the MCP gateway: no valid bearer token, no entry (401).

    The caller derived from the token is put in scope["fracta.caller"] for the route or tool to check.
    `sessions`, when given (the REST API, for the web view), may vouch for a request without a
    bearer token. Pure ASGI with no imports, so this module stays light for the CLI's fast paths.
    """

    def __init__(self, app: Any, repo: Repo, sessions: SessionCheck | None = None) -> None:
        self.app = app
        self.repo = repo
        self.sessions = sessions

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        token = bearer_token(scope)
        caller = resolve(self.repo, token)
        if caller is None and not token and self.sessions is not None:
            caller = self.sessions.caller(scope)
        if caller is None:
            if scope["type"] == "websocket":  # no route takes one, but no connection skips the guard
                await send({"type": "websocket.close", "code": 1008})
            else:
                await _unauthorized(send)
            return
        scope["fracta.caller"] = caller
        await self.app(scope, receive, send)


def caller_of(scope: Mapping[str, Any]) -> Caller:
    """The caller AuthMiddleware found for this request (a request that bypassed it is refused)."""
    caller = scope.get("fracta.caller")
    if not isinstance(caller, Caller):
        raise Forbidden("this request carries no verified identity", "send Authorization: Bearer <token>")
    return caller


async def _unauthorized(send: Any) -> None:
    from .results import VERSION

    body = json.dumps(
        {
            "version": VERSION,
            "error": {
                "type": "Unauthorized",
                "message": "missing or unknown token",
                "hint": "send Authorization: Bearer <token> (the chessmaster's is in .fracta/token; "
                "an agent's is in FRACTA_TOKEN)",
            },
        }
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", b"Bearer"),
    ]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})
