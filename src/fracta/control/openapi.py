"""The OpenAPI document of the REST API, served at /openapi.json (and fuzzed by the tests)."""

from __future__ import annotations

from typing import Any

from .. import __version__

# An agent name (fracta/names.py; the server also refuses double dashes and reserved names).
_NAME_SCHEMA = {"type": "string", "pattern": "^[a-z]([a-z0-9-]*[a-z0-9])?$", "maxLength": 40}
_NAME = {"name": "name", "in": "path", "required": True, "schema": _NAME_SCHEMA}
_ERROR = {
    "description": "a clear error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_OBJ = {"application/json": {"schema": {"type": "object"}}}


def _op(
    summary: str,
    *,
    ok: str = "200",
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    errors: tuple[str, ...] = ("400", "401", "404", "409", "422"),
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "parameters": params or [],
        "responses": {ok: {"description": "success", "content": _OBJ}, **{code: _ERROR for code in errors}},
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def _obj(required: list[str], **props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props}


_STR = {"type": "string"}
_BOOL = {"type": "boolean"}
_RECEIPT = {"type": "string", "pattern": "^[0-9a-f]{16}-[0-9]{1,20}$", "description": "a receipt from an inbox result"}
_KEY = {
    "type": "string",
    "minLength": 1,
    "maxLength": 200,
    "description": "stores the message once however often the request is retried (also: Idempotency-Key header)",
}


def q_int(name: str, low: int, high: int) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": low, "maximum": high},
    }


def _events() -> dict[str, Any]:
    """GET /v1/events: a JSON page by default, a live server-sent-event stream on request."""
    last_event_id = {
        "name": "Last-Event-ID",
        "in": "header",
        "required": False,
        "description": "resume right after this event (its id, a byte offset); wins over since",
        "schema": {"type": "integer", "minimum": 0, "maximum": 2**40},
    }
    op = _op(
        "The event log: a JSON page, or a live stream with Accept: text/event-stream",
        params=[q_int("since", 0, 2**40), q_int("limit", 1, 10000), last_event_id],
        errors=("401", "422"),
    )
    op["description"] = (
        "JSON (default): {version, events: [record with offset], next}; ask again with since=next. "
        "With Accept: text/event-stream: server-sent events following .fracta/events.jsonl live; each "
        "event's id is the byte offset just past it, its event field the record's event name, its data "
        "the JSON record with offset. Reconnect with Last-Event-ID to resume."
    )
    op["responses"]["200"]["content"] = {
        "application/json": {"schema": {"type": "object"}},
        "text/event-stream": {"schema": {"type": "string"}},
    }
    return op


def document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "fracta control plane", "version": __version__},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": _obj(
                    ["version", "error"],
                    version={"type": "integer"},
                    error=_obj(["type", "message", "hint"], type=_STR, message=_STR, hint=_STR),
                ),
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/health": {"get": _op("Is the control plane up?", errors=("401",))},
            "/v1/agents": {
                "get": _op("Every agent", errors=("401",)),
                "post": _op(
                    "Spawn an agent",
                    ok="201",
                    body=_obj(
                        ["name"],
                        name=_NAME_SCHEMA,
                        runtime=_STR,
                        prompt=_STR,
                        base=_STR,
                        workspace=_STR,
                        args={"type": "array", "items": _STR},
                    ),
                ),
            },
            "/v1/agents/{name}": {
                "get": _op("One agent", params=[_NAME]),
                "delete": _op("Kill an agent", params=[_NAME, {"name": "force", "in": "query", "schema": _BOOL}]),
            },
            "/v1/agents/{name}/merge": {
                "post": _op("Merge the agent's branch", params=[_NAME], body=_obj([], notify=_BOOL)),
            },
            "/v1/agents/{name}/inbox": {
                "post": _op(
                    "Hand out the agent's unread messages; `ack` (the receipt of the previous read) acknowledges "
                    "what that read handed out",
                    params=[_NAME],
                    body=_obj([], all=_BOOL, ack=_RECEIPT),
                ),
            },
            "/v1/agents/{name}/inbox/ack": {
                "post": _op(
                    "Acknowledge the messages a read handed out under `receipt`",
                    params=[_NAME],
                    body=_obj(["receipt"], receipt=_RECEIPT),
                ),
            },
            "/v1/agents/{name}/intent": {
                "get": _op("The agent's intent", params=[_NAME]),
                "put": _op("Set the agent's intent", params=[_NAME], body=_obj(["intent"], intent=_STR)),
            },
            "/v1/agents/{name}/peek": {
                "get": _op("Recent output", params=[_NAME, q_int("n", 0, 10000), q_int("since", 0, 2**62)]),
            },
            "/v1/messages": {
                "post": _op(
                    "Send a message",
                    ok="201",
                    body=_obj(
                        ["to", "body"],
                        to={"type": "string", "pattern": "^([*]|[a-z]([a-z0-9-]*[a-z0-9])?)$", "maxLength": 40},
                        body=_STR,
                        subject=_STR,
                        reply_to=_STR,
                        idempotency_key=_KEY,
                        **{"from": _NAME_SCHEMA},
                    ),
                ),
            },
            "/v1/progress": {
                "get": {
                    "summary": "progress.md",
                    "responses": {
                        "200": {"description": "markdown", "content": {"text/markdown": {"schema": _STR}}},
                        "401": _ERROR,
                    },
                }
            },
            "/v1/events": {"get": _events()},
        },
    }
