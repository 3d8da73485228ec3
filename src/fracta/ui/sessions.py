"""The web view's logins, as Jupyter does them: `fracta ui` asks the control plane for a one-time
link; opening it trades the link's token for a session cookie (HttpOnly, SameSite=Strict).

Kept in the control plane's memory only: a restarted control plane forgets every session, and the
page says to run `fracta ui` again. A request carrying a session cookie acts as the chessmaster;
one that changes anything must also carry the session's CSRF token in a header and, when the
browser sends one, an Origin naming this very server.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import names
from ..identity import Caller

LINK_TTL = 600.0  # seconds a one-time link stays valid
MAX_SESSIONS = 64  # the oldest session is forgotten past this many
CSRF_HEADER = "x-fracta-csrf"
SAFE_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class Session:
    id: str
    csrf: str
    created: float


def cookie_name(scope: Mapping[str, Any]) -> str:
    """One cookie per port: browsers send a host's cookies to all its ports, and two repositories'
    control planes on one machine must not overwrite each other's session."""
    server = scope.get("server") or ("", 0)
    return f"fracta_ui_{server[1]}"


class Sessions:
    """One-time link tokens and the sessions they became (thread-safe: routes run in threads)."""

    def __init__(self, link_ttl: float = LINK_TTL) -> None:
        self.link_ttl = link_ttl
        self._links: dict[str, float] = {}  # sha256 of a link token -> when it expires
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def link(self) -> tuple[str, float]:
        """A new one-time link token and when it expires (epoch seconds)."""
        token = secrets.token_urlsafe(32)
        expires = time.time() + self.link_ttl
        with self._lock:
            now = time.time()
            self._links = {k: v for k, v in self._links.items() if v > now}
            self._links[_digest(token)] = expires
        return token, expires

    def redeem(self, token: str) -> Session | None:
        """The new session a link token opens, or None: unknown, expired or already used."""
        with self._lock:
            expires = self._links.pop(_digest(token), None)
            if expires is None or expires < time.time():
                return None
            session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(24), time.time())
            self._sessions[session.id] = session
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.pop(next(iter(self._sessions)))
            return session

    def session(self, scope: Mapping[str, Any]) -> Session | None:
        """The session of the request's cookie, or None."""
        value = _cookies(scope).get(cookie_name(scope))
        with self._lock:
            return self._sessions.get(value) if value else None

    def caller(self, scope: Mapping[str, Any]) -> Caller | None:
        """The chessmaster for a request with a live session cookie that passes the CSRF guard."""
        session = self.session(scope)
        if session is None:
            return None
        if scope.get("method", "GET") not in SAFE_METHODS:
            headers = _headers(scope)
            sent = headers.get(CSRF_HEADER, "")
            if not secrets.compare_digest(sent.encode(), session.csrf.encode()):
                return None
            origin = headers.get("origin")
            if origin is not None and origin.split("://", 1)[-1] != headers.get("host"):
                return None
        return Caller(names.CHESSMASTER)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _headers(scope: Mapping[str, Any]) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers") or ()}


def _cookies(scope: Mapping[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for key, value in scope.get("headers") or ():
        if key == b"cookie":
            for part in value.decode("latin-1").split(";"):
                name, _, val = part.strip().partition("=")
                if name:
                    found[name] = val
    return found
