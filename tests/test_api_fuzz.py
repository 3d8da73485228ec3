"""The REST API fuzzed from its own OpenAPI document (schemathesis) against a real control plane.

No input may cause a 5xx, every 4xx is a JSON error with a clear message, schema-invalid input is
refused with a 4xx, and every answer conforms to the document (status, media type, body schema):
the document is generated from the same models (fracta/contracts) the routes validate with.
Bounded (a few examples per operation and mode) and deterministic (derandomized, no example
database).
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from conftest import CliRunner
from hypothesis import HealthCheck, Phase, given, settings
from lifecycle_helpers import cleanup, use_free_port
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks

from fracta import repo as repo_mod
from fracta.control import daemon

EXAMPLES = 25  # per operation and generation mode: about 650 requests in all
KNOWN = ("alpha", "beta", "worker")  # agents that exist, so that fuzzed calls also reach deep


@pytest.fixture
def api(initialized: repo_mod.Repo, cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """A running control plane (URL, chessmaster token) whose PATH holds only git: no fuzzed spawn can run more."""
    use_free_port(initialized)
    tools = initialized.root.parent / "bin"
    tools.mkdir()
    for name in ("git",):
        found = next(Path(p) / name for p in os.environ["PATH"].split(os.pathsep) if (Path(p) / name).exists())
        (tools / name).symlink_to(found)
    monkeypatch.setenv("PATH", str(tools))
    with cleanup(initialized):
        for name in ("alpha", "beta"):
            assert cli("join", name).returncode == 0
        up = cli("up")
        assert up.returncode == 0, up.stderr
        spawned = cli("spawn", "worker", "--", "git", "status")
        assert spawned.returncode == 0, spawned.stderr
        info = daemon.read_info(initialized)
        assert info is not None
        yield info.url, initialized.token_path.read_text().strip()


@schemathesis.check
def clear_error(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> bool | None:
    """A 4xx says what is wrong: the versioned JSON error with a type and a non-empty message."""
    if not 400 <= response.status_code < 500:
        return None
    body = json.loads(response.content)
    error = body["error"]
    assert body["version"] == 1, body
    assert error["type"] and isinstance(error["message"], str) and error["message"].strip(), body
    return True


def pick(value: Any, known: tuple[str, ...] = KNOWN) -> str | None:
    """For about two cases in three, one of the `known` names (chosen by a stable hash of `value`)."""
    digest = zlib.crc32(repr(value).encode())
    return known[digest % len(known)] if digest % 3 else None


def steer(case: schemathesis.Case) -> schemathesis.Case:
    """Point valid cases at existing agents, and keep every fuzzed workspace inside the test repo."""
    body = case.body if isinstance(case.body, dict) else None
    if body is not None and isinstance(body.get("workspace"), str):
        body["workspace"] = "fuzzed-workspace"  # a fuzzed path would make folders anywhere on this machine
    if case.meta is None or case.meta.generation.mode is not GenerationMode.POSITIVE:
        return case
    if "name" in case.path_parameters:
        case.path_parameters["name"] = pick(case.path_parameters["name"]) or case.path_parameters["name"]
    if body is not None and "message" in body:  # a message: between agents that exist
        body["to"] = pick(body.get("to"), (*KNOWN, "chessmaster")) or body["to"]
        body["from"] = "chessmaster" if pick(body.get("from")) else body.get("from", "chessmaster")
    if body is not None and "args" in body and pick(body["args"]):  # a spawn that can really start
        body.update(runtime="command", args=["git", "status"])
    return case


def modes(operation: schemathesis.APIOperation) -> tuple[GenerationMode, ...]:
    """Positive cases for every operation; negative ones where there is an input of ours to break."""
    ours = [p for p in operation.headers if p.name.lower() != "authorization"]
    if operation.path_parameters or operation.query or operation.body or ours:
        return (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    return (GenerationMode.POSITIVE,)


def test_the_rest_api_survives_fuzzing_from_its_openapi_document(api: tuple[str, str]) -> None:
    url, token = api
    auth = {"Authorization": f"Bearer {token}"}
    # Unknown query parameters are ignored (as HTTP APIs do), and the token is ours: fuzz the rest.
    config = schemathesis.Config.from_dict(
        {"generation": {"allow-extra-parameters": False, "with-security-parameters": False}}
    )
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=config, headers=auth, timeout=30)

    @schema.hook  # type: ignore[untyped-decorator]
    def map_case(context: Any, case: schemathesis.Case) -> schemathesis.Case:
        return steer(case)

    load_all_checks()
    # Every answer must be what the generated document promises: its status, media type and body schema.
    conformance = ["status_code_conformance", "content_type_conformance", "response_schema_conformance"]
    checks = [*CHECKS.get_by_names(["not_a_server_error", "negative_data_rejection", *conformance]), clear_error]
    # Killing comes last, so that the agents the other operations aim at still exist.
    operations = sorted((result.ok() for result in schema.get_all_operations()), key=lambda op: op.method == "delete")
    assert len(operations) >= 12
    for operation in operations:
        for mode in modes(operation):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                derandomize=True,
                database=None,
                deadline=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def fuzz(case: schemathesis.Case) -> None:
                response = case.call(base_url=url, headers=auth, timeout=60)
                case.validate_response(response, checks=checks, headers=auth)

            fuzz()
