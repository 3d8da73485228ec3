"""One typed contract per operation (fracta/contracts): the OpenAPI document, the REST routes, the MCP
tools and docs/json.md are all derived from the same models, and these tests prove that they agree."""

from __future__ import annotations

import copy
import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import CliRunner
from lifecycle_helpers import cleanup, use_free_port
from openapi_spec_validator import validate

from fracta import repo as repo_mod
from fracta import results
from fracta.contracts import docs, shapes
from fracta.contracts.operations import OPERATIONS, by_tool, schema
from fracta.control import app, daemon, openapi
from fracta.errors import AgentNotFound
from fracta.gateway import tools

DOCS = Path(__file__).resolve().parent.parent / "docs" / "json.md"
REF = "#/components/schemas/"


def resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        kind, name = node["$ref"].split("/")[-2:]
        node = doc["components"][kind][name]
    return node


def plain(prop: dict[str, Any]) -> dict[str, Any]:
    """A property's schema as a value constraint: no prose, no null branch, no null default."""
    prop = copy.deepcopy(prop)
    prop.pop("description", None)
    if prop.get("default", 0) is None:
        del prop["default"]
    branches = prop.pop("anyOf", None)
    if branches:
        prop.update(next(b for b in branches if b.get("type") != "null"))
    return prop


def rest_inputs(doc: dict[str, Any], method: str, path: str) -> tuple[dict[str, Any], set[str]]:
    """What a REST route takes, read from the served document: every parameter and body field, and the required ones."""
    op = doc["paths"][path][method.lower()]
    props = {p["name"]: p["schema"] for p in op["parameters"] if p["in"] in {"path", "query"}}
    required = {p["name"] for p in op["parameters"] if p["in"] in {"path", "query"} and p["required"]}
    if "requestBody" in op:
        body = resolve(doc, op["requestBody"]["content"]["application/json"]["schema"])
        assert body["additionalProperties"] is False, f"{method} {path}: the body takes unknown keys"
        assert not set(props) & set(body["properties"]), f"{method} {path}: a field both in the URL and the body"
        props |= body["properties"]
        required |= set(body.get("required", []))
        assert op["requestBody"]["required"] == bool(body.get("required"))
    return props, required


def test_the_generated_openapi_document_is_valid_openapi_3_1() -> None:
    doc = openapi.document()
    validate(doc)  # raises with the offending path if the document is not valid OpenAPI
    assert doc["openapi"].startswith("3.1")


def test_every_answer_of_every_route_is_typed_errors_included() -> None:
    doc = openapi.document()
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            assert op["responses"], f"{method} {path}"
            for status, response in op["responses"].items():
                response = resolve(doc, response)
                for media, content in response["content"].items():
                    if media == "application/json":
                        target = content["schema"]["$ref"].removeprefix(REF)
                        assert resolve(doc, content["schema"])["properties"], f"{method} {path} {status}: untyped"
                        if status != "default" and int(status) < 400:
                            assert target == by_path(method, path).result.__name__
                        else:
                            assert target == "Error", f"{method} {path} {status}: an error not typed as Error"
                    else:
                        assert content["schema"] == {"type": "string"}, f"{method} {path}: {media}"


def by_path(method: str, path: str) -> Any:
    return next(op for op in OPERATIONS if op.path == path and (op.method or "").lower() == method)


def test_each_mcp_tool_takes_exactly_what_its_rest_route_takes() -> None:
    doc = openapi.document()
    both = [op for op in OPERATIONS if op.tool and op.path]
    assert {op.tool for op in both} == {
        "fracta_list", "fracta_spawn", "fracta_kill", "fracta_merge", "fracta_inbox", "fracta_set_intent",
        "fracta_peek", "fracta_send", "fracta_sent",
    }  # fmt: skip
    for op in both:
        assert op.tool is not None and op.method is not None and op.path is not None
        tool = tools.get(op.tool)
        assert tool is not None, op.tool
        published = tool.input_schema()
        rest, rest_required = rest_inputs(doc, op.method, op.path)
        assert set(published["properties"]) == set(rest), f"{op.tool} and {op.method} {op.path} take other fields"
        for key, prop in published["properties"].items():
            assert plain(prop) == plain(rest[key]), f"{op.tool}.{key} differs from {op.method} {op.path}'s {key}"
        assert set(published.get("required", [])) == rest_required, f"{op.tool}: other required fields"
        assert published["additionalProperties"] is False


def test_fracta_say_is_fracta_send_without_from() -> None:
    say, send = (tools.get(name) for name in ("fracta_say", "fracta_send"))
    assert say is not None and send is not None
    said, sent = say.input_schema(), send.input_schema()
    assert said["properties"] == {k: v for k, v in sent["properties"].items() if k != "from"}
    assert said["required"] == sent["required"] == ["to", "message"]


def test_every_tool_is_an_operation_and_publishes_its_result_model() -> None:
    for tool in tools.TOOLS:
        op = by_tool(tool.name)
        assert op.result is not None
        assert tool.input_schema() == schema(op.request)
        assert tool.output_schema() == schema(op.result)
        assert tool.output_schema()["properties"]["version"] == {  # type: ignore[index]
            "const": 1,
            "description": "the shape's version",
            "type": "integer",
        }


def test_every_rest_route_is_an_operation_of_the_document(initialized: repo_mod.Repo) -> None:
    served = openapi.document()["paths"]
    routes = {
        (method.lower(), getattr(route, "path", ""))
        for route in app.build(initialized, kick=lambda: None).routes
        for method in getattr(route, "methods", None) or ()
        if method != "HEAD" and getattr(route, "path", "") != "/openapi.json"
    }
    documented = {(method, path) for path, methods in served.items() for method in methods}
    assert routes == documented


def test_the_contract_models_version_and_error_are_fracta_results() -> None:
    assert shapes.VERSION == results.VERSION
    error = results.error(AgentNotFound("no agent named 'x'", "run fracta list to see the agents"))
    assert shapes.Error.model_validate_json(json.dumps(error)).error.type == "AgentNotFound"


def test_docs_json_md_field_tables_are_generated_from_the_models() -> None:
    page = DOCS.read_text()
    assert docs.render(page) == page, "docs/json.md is out of date: run python -m fracta.contracts.docs docs/json.md"
    tabled = {m.group(2) for m in docs.BLOCK.finditer(page)}
    answered = {op.result.__name__ for op in OPERATIONS if op.result is not None}
    missing = sorted((answered | {"Joined", "Doctor", "Error"}) - tabled)
    assert not missing, f"docs/json.md has no table for {missing}"


def test_a_table_shows_a_changed_model_so_the_page_test_fails() -> None:
    class Changed(shapes.Intent):
        since: str | None = None

    assert "| `since` | string \\| null |" in docs.table(Changed, set())


@pytest.fixture
def served(initialized: repo_mod.Repo, cli: CliRunner) -> Iterator[tuple[str, dict[str, str]]]:
    use_free_port(initialized)
    with cleanup(initialized):
        assert cli("join", "api").returncode == 0
        up = cli("up")
        assert up.returncode == 0, up.stderr
        info = daemon.read_info(initialized)
        assert info is not None
        yield info.url, {"Authorization": f"Bearer {initialized.token_path.read_text().strip()}"}


def request(url: str, method: str, path: str, headers: dict[str, str], body: Any = None) -> tuple[int, Any]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=30)
    try:
        raw = None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=raw, headers={"Content-Type": "application/json", **headers})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_the_served_document_is_valid_and_the_routes_refuse_what_the_models_refuse(
    served: tuple[str, dict[str, str]],
) -> None:
    url, auth = served
    status, doc = request(url, "GET", "/openapi.json", auth)
    assert status == 200 and doc == json.loads(json.dumps(openapi.document()))
    validate(doc)
    refused = {
        ("POST", "/v1/agents", json.dumps({"name": 7})): "the field 'name' of POST /v1/agents must be a string",
        ("POST", "/v1/agents", json.dumps({"name": "a", "bogus": 1})): "POST /v1/agents does not take 'bogus'",
        ("POST", "/v1/messages", json.dumps({"to": "api"})): "POST /v1/messages needs the field 'message'",
        ("POST", "/v1/messages", json.dumps({"to": "api", "message": "x", "idempotency_key": ""})): (
            "the field 'idempotency_key' of POST /v1/messages must have at least 1 character"
        ),
        ("POST", "/v1/agents/api/inbox", json.dumps({"all": "yes"})): "must be true or false",
        ("POST", "/v1/agents/api/inbox", json.dumps({"name": "api"})): "the request body does not take 'name'",
        ("GET", "/v1/agents/api/peek?n=10001", None): "the field 'n' of GET /v1/agents/api/peek must be less than",
        ("GET", "/v1/events?limit=0", None): "the field 'limit' of GET /v1/events must be greater than or equal to 1",
    }
    for (method, path, body), expected in refused.items():
        status, answer = request(url, method, path, auth, None if body is None else json.loads(body))
        assert status == 422, (method, path, body, answer)
        assert answer["error"]["type"] == "InvalidInput" and expected in answer["error"]["message"], answer
        shapes.Error.model_validate_json(json.dumps(answer))
    status, answer = request(url, "POST", "/v1/messages", auth, {"to": "api", "message": "hi", "from": None})
    assert status == 201 and shapes.Sent.model_validate_json(json.dumps(answer)).sent[0].sender == "chessmaster"
