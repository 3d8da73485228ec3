"""The OpenAPI document of the REST API, served at /openapi.json (and fuzzed by the tests)."""

from __future__ import annotations

from typing import Any

from .. import __version__

_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}}
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


def q_int(name: str, low: int, high: int) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": low, "maximum": high},
    }


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
                        name=_STR,
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
                "post": _op("Read (and mark read) the agent's messages", params=[_NAME], body=_obj([], all=_BOOL)),
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
                    body=_obj(["to", "body"], to=_STR, body=_STR, subject=_STR, reply_to=_STR, **{"from": _STR}),
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
            "/v1/events": {"get": _op("The event log", params=[q_int("since", 0, 2**62), q_int("limit", 1, 10000)])},
        },
    }
