"""A light HTTP client for the control plane's REST API (fracta.httplite: no heavy imports)."""

from __future__ import annotations

import json
from collections.abc import Iterator
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


def follow(repo: Repo, info: ControlInfo, since: int, timeout: float = 60.0) -> Iterator[tuple[int, dict[str, Any]]]:
    """The control plane's event stream (GET /v1/events as server-sent events): (cursor past it, record).

    From cursor `since` (an Event.end of the store's log). Ends when the
    control plane closes the stream; ControlPlaneUnavailable when it cannot be reached or goes
    silent for `timeout` seconds (it sends a keepalive comment every 15 s).
    """
    headers = {
        "Authorization": f"Bearer {identity.chessmaster_token(repo)}",
        "Accept": "text/event-stream",
        "Last-Event-ID": str(since),
    }
    try:
        host, port = httplite.host_port(info.url)
        response = httplite.request(host, port, "GET", "/v1/events", headers, connect_timeout=10.0, timeout=timeout)
    except (OSError, ValueError) as exc:
        raise ControlPlaneUnavailable(
            f"cannot reach the control plane at {info.url}: {exc}", "fracta status; fracta up"
        ) from None
    try:
        if response.status >= 400:
            raise remote_error(_error_of(response.read()), response.status)
        data: list[bytes] = []
        cursor = since
        for line in response.lines():
            line = line.rstrip(b"\r")
            if line.startswith(b"data:"):
                data.append(line[5:].lstrip())
            elif line.startswith(b"id:") and line[3:].strip().isdigit():
                cursor = int(line[3:].strip())
            elif not line and data:
                yield cursor, json.loads(b"\n".join(data))
                data = []
    except OSError as exc:
        raise ControlPlaneUnavailable(f"lost the control plane's event stream: {exc}", "fracta status") from None
    finally:
        response.close()


def _error_of(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        return {}
    return data.get("error") or {} if isinstance(data, dict) else {}
