"""A light HTTP client for the control plane's REST API (fracta.httplite: no heavy imports)."""

from __future__ import annotations

import json
from typing import Any

from .. import errors, httplite, identity
from ..errors import ControlPlaneUnavailable, FractaError
from ..repo import Repo
from .daemon import ControlInfo


def call(
    repo: Repo, info: ControlInfo, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 120.0
) -> dict[str, Any]:
    """Call the API as the chessmaster; errors come back as the same FractaError types."""
    payload = json.dumps(body).encode() if body is not None else b""
    headers = {"Authorization": f"Bearer {identity.chessmaster_token(repo)}", "Content-Type": "application/json"}
    try:
        host, port = httplite.host_port(info.url)
        response = httplite.request(
            host, port, method, path, headers, payload, connect_timeout=timeout, timeout=timeout
        )
        try:
            raw = response.read()
        finally:
            response.close()
    except (OSError, ValueError) as exc:
        raise ControlPlaneUnavailable(
            f"cannot reach the control plane at {info.url}: {exc}", "fracta status; fracta up"
        ) from None
    try:
        data = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        data = {"error": {"type": "FractaError", "message": raw.decode(errors="replace")[:500], "hint": ""}}
    if response.status >= 400:
        raise remote_error(data.get("error") or {}, response.status)
    return data if isinstance(data, dict) else {"data": data}


def remote_error(error: dict[str, Any], status: int) -> FractaError:
    """Rebuild the server's error so the CLI shows the same message, hint and exit code."""
    cls = getattr(errors, str(error.get("type")), None)
    exc = FractaError(str(error.get("message") or f"HTTP {status}"), str(error.get("hint") or ""))
    if isinstance(cls, type) and issubclass(cls, FractaError):
        exc.exit_code = cls.exit_code
    return exc
