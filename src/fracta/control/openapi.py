"""The OpenAPI 3.1 document of the REST API, served at /openapi.json: generated from fracta/contracts.

Nothing here describes a field: every schema comes from the request and result models, so the
document, the routes' validation and the MCP tools' schemas cannot drift apart.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic.json_schema import models_json_schema

from .. import __version__
from ..contracts import requests as rq
from ..contracts import shapes as sh
from ..contracts.base import Contract
from ..contracts.operations import COMMON_ERRORS, OPERATIONS, Operation, Schema, keys

REF = "#/components/schemas/{model}"
_REASONS = {
    400: "the request cannot be carried out",
    401: "no valid bearer token",
    403: "the caller may not do this",
    404: "no such agent",
    409: "it conflicts with the current state",
    413: "the request body is too large",
    422: "the input is invalid",
}


def document() -> dict[str, Any]:
    schemas = _schemas()
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        if op.path is not None and op.method is not None:
            paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, schemas)
    _stream_events(paths["/v1/events"]["get"])
    _send_headers(paths["/v1/messages"]["post"])
    return {
        "openapi": "3.1.0",
        "info": {"title": "fracta control plane", "version": __version__},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas,
            "responses": {str(code): _error(text) for code, text in _REASONS.items()},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


def _schemas() -> dict[str, Any]:
    """Every model of a REST operation, plus Error, under components/schemas (nested models too)."""
    models: set[type[Contract]] = {sh.Error}
    for op in OPERATIONS:
        if op.path is not None:
            models |= {op.request} if op.result is None else {op.request, op.result}
    ordered = sorted(models, key=lambda m: m.__name__)
    _, defs = models_json_schema([(m, "validation") for m in ordered], ref_template=REF, schema_generator=Schema)
    return dict(defs["$defs"])


def _operation(op: Operation, schemas: dict[str, Any]) -> dict[str, Any]:
    model = schemas[op.request.__name__]
    required = set(model.get("required", []))
    params = [_param(key, "path", model, required) for key in op.in_path]
    params += [_param(key, "query", model, required) for key in op.query]
    found: dict[str, Any] = {"operationId": op.id, "summary": op.summary, "parameters": params}
    if op.in_body:
        body = _body(op, model, schemas)
        found["requestBody"] = {
            "required": bool(body.get("required")),
            "content": {"application/json": {"schema": {"$ref": REF.format(model=_body_name(op))}}},
        }
    ok: dict[str, Any] = {"description": "success"}
    if op.result is not None:
        ok["content"] = {"application/json": {"schema": {"$ref": REF.format(model=op.result.__name__)}}}
    else:
        ok["content"] = {"text/markdown": {"schema": {"type": "string"}}}
    errors = {str(code): {"$ref": f"#/components/responses/{code}"} for code in sorted({*COMMON_ERRORS, *op.errors})}
    found["responses"] = {str(op.status): ok, **errors, "default": _error("an unexpected error")}
    return found


def _body_name(op: Operation) -> str:
    """The request model itself, or `<Model>Body` when part of it travels in the path or the query."""
    name = op.request.__name__
    return name if set(op.in_body) == set(keys(op.request)) else f"{name}Body"


def _body(op: Operation, model: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    name = _body_name(op)
    if name not in schemas:
        body = copy.deepcopy(model)
        body["properties"] = {k: v for k, v in body["properties"].items() if k in op.in_body}
        kept = [k for k in body.get("required", []) if k in op.in_body]
        body.pop("required", None)
        if kept:
            body["required"] = kept
        body["title"] = name
        schemas[name] = body
    result: dict[str, Any] = schemas[name]
    return result


def _param(key: str, where: str, model: dict[str, Any], required: set[str]) -> dict[str, Any]:
    prop = copy.deepcopy(model["properties"][key])
    description = prop.pop("description", None)
    if prop.get("default", 0) is None:
        del prop["default"]
    branches = prop.pop("anyOf", None)
    if branches:  # a parameter is absent rather than null: keep the non-null branch
        prop.update(next(b for b in branches if b.get("type") != "null"))
    param = {"name": key, "in": where, "required": where == "path" or key in required, "schema": prop}
    if description:
        param["description"] = description
    return param


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}},
    }


def _stream_events(op: dict[str, Any]) -> None:
    """GET /v1/events also streams: server-sent events when asked for, resumable with Last-Event-ID."""
    op["description"] = (
        "JSON (default): {version, events: [record with offset], next}; ask again with since=next. "
        "With Accept: text/event-stream: server-sent events following .fracta/events.jsonl live; each "
        "event's id is the byte offset just past it, its event field the record's event name, its data "
        "the JSON record with offset. Reconnect with Last-Event-ID to resume."
    )
    op["parameters"].append(
        {
            "name": "Last-Event-ID",
            "in": "header",
            "required": False,
            "description": "resume right after this event (its id, a byte offset); wins over since",
            "schema": {"type": "integer", "minimum": 0, "maximum": rq.MAX_EVENT_OFFSET},
        }
    )
    op["responses"]["200"]["content"]["text/event-stream"] = {"schema": {"type": "string"}}


def _send_headers(op: dict[str, Any]) -> None:
    key = rq.Say.model_fields["idempotency_key"]
    op["parameters"].append(
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": f"the same as the idempotency_key field ({key.description})",
            "schema": {"type": "string", "minLength": 1, "maxLength": 200},
        }
    )
