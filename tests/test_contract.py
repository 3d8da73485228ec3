"""The --json contract (docs/json.md), pinned through the real CLI: exact key sets and exact types.

Each document is also validated against its model (fracta/contracts/shapes.py), the one the
OpenAPI document and the MCP output schemas come from: the CLI builds plain dicts (no pydantic on
its fast paths), so this is where the two are held together.

Any change to a shape fails here on purpose. If the change is intended: update the model, the
shapes below and docs/json.md (python -m fracta.contracts.docs docs/json.md) together, and bump
fracta.results.VERSION if the change is incompatible (a field removed, renamed, or given another
type or meaning).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from conftest import CliRunner

from fracta import agents, clock, processes, results
from fracta import repo as repo_mod
from fracta.contracts import shapes
from fracta.contracts.base import Contract
from fracta.contracts.operations import keys
from fracta.errors import EXIT_CORRUPT, AgentNotFound

NULL = type(None)
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")  # UTC, milliseconds
DOCS = Path(__file__).resolve().parent.parent / "docs" / "json.md"

# A shape is a dict of key -> spec, where a spec is a tuple of allowed exact types, a nested
# shape (dict), or a one-item list [spec] for "a list whose items all match spec".
Spec = Any

USAGE: dict[str, Spec] = {
    "input": (int,),
    "output": (int,),
    "cache_read": (int,),
    "cache_write": (int,),
    "total": (int,),
    "cost_usd": (float, NULL),
    "estimated": (bool,),
}
AGENT: dict[str, Spec] = {
    "name": (str,),
    "runtime": (str,),
    "status": (str,),
    "kind": (str,),
    "intent": (str,),
    "created_at": (str,),
    "updated_at": (str,),
    "workspace": (str, NULL),
    "workspace_kind": (str, NULL),
    "branch": (str, NULL),
    "base": (str, NULL),
    "command": [(str,)],
    "pid": (int, NULL),
    "pid_start": (int, NULL),
    "session_id": (str, NULL),
    "exit_code": (int, NULL),
    "started_at": (str, NULL),
    "finished_at": (str, NULL),
    "last_commit": (str, NULL),
    "last_commit_subject": (str, NULL),
    "tokens_used": (int, NULL),
    "error": (str, NULL),
    "unread": (int,),
    "last_activity": (str, NULL),
    "waiting": (str, NULL),
    "usage": USAGE | {"model": (str, NULL)},
    "stopped": (str, NULL),
    "state": (str,),
    "state_reason": (str,),
}
MESSAGE: dict[str, Spec] = {
    "id": (str,),
    "from": (str,),
    "to": (str,),
    "sent_at": (str,),
    "subject": (str, NULL),
    "reply_to": (str, NULL),
    "body": (str,),
    "read": (bool,),
}
PROBLEM: dict[str, Spec] = {"path": (str,), "error": (str,)}
TOTALS: dict[str, Spec] = {"agents": (int,), "states": {}, "usage": USAGE, "queued": (int,)}
LIST: dict[str, Spec] = {"version": (int,), "agents": [AGENT], "problems": [PROBLEM], "totals": TOTALS}
INBOX: dict[str, Spec] = {
    "version": (int,),
    "agent": (str,),
    "messages": [MESSAGE],
    "problems": [PROBLEM],
    "receipt": (str,),
}
SENT: dict[str, Spec] = {"version": (int,), "sent": [MESSAGE], "duplicates": [(str,)], "undeliverable": {}}
INTENT: dict[str, Spec] = {"version": (int,), "agent": (str,), "intent": (str,)}
JOINED: dict[str, Spec] = {"version": (int,), "agent": (str,), "env": {}}  # env: checked on its own below
ERROR: dict[str, Spec] = {"version": (int,), "error": {"type": (str,), "message": (str,), "hint": (str,)}}
ENV_ALWAYS = {"FRACTA_AGENT", "FRACTA_HOME", "FRACTA_TOKEN"}
ENV_WITH_CONTROL_PLANE = {"FRACTA_URL", "FRACTA_GATEWAY_URL"}
STATUSES = {"queued", "starting", "running", "idle", "done", "failed", "killed", "lost"}
TIMESTAMPS = {"created_at", "updated_at", "started_at", "finished_at", "last_activity", "sent_at"}


def check(value: Any, spec: Spec, where: str = "$") -> None:
    """Fail with the path of the first difference between `value` and `spec`."""
    if isinstance(spec, dict):
        assert type(value) is dict, f"{where}: expected an object, got {type(value).__name__}"
        if spec:  # an empty shape means "an object", checked by the caller
            extra, missing = sorted(set(value) - set(spec)), sorted(set(spec) - set(value))
            assert not extra and not missing, f"{where}: unexpected keys {extra}, missing keys {missing}"
            for key, sub in spec.items():
                check(value[key], sub, f"{where}.{key}")
    elif isinstance(spec, list):
        assert type(value) is list, f"{where}: expected a list, got {type(value).__name__}"
        for i, item in enumerate(value):
            check(item, spec[0], f"{where}[{i}]")
    else:
        # Exact types: a bool is not accepted as an int, nor an int as a bool.
        allowed = " or ".join(t.__name__ for t in spec)
        assert type(value) in spec, f"{where}: expected {allowed}, got {type(value).__name__} {value!r}"
        if where.rsplit(".", 1)[-1] in TIMESTAMPS and value is not None:
            assert STAMP.match(value), f"{where}: {value!r} is not a UTC timestamp like 2025-01-01T12:00:00.000Z"


def run_json(cli: CliRunner, *args: str, model: type[Contract], code: int = 0) -> Any:
    """The command's --json document, validated against `model` (exact types, every key, no other key)."""
    result = cli(*args, "--json")
    assert result.returncode == code, f"fracta {' '.join(args)} --json exited {result.returncode}: {result.stderr}"
    model.model_validate_json(result.stdout)
    data = json.loads(result.stdout)
    assert data["version"] == 1 == results.VERSION, "the version changed: update docs/json.md and this test"
    return data


def test_list_json_pins_every_agent_field_and_the_problems(initialized: repo_mod.Repo, cli: CliRunner) -> None:
    assert cli("join", "api", "--intent", "design the endpoints").returncode == 0
    assert cli("join", "broken").returncode == 0
    assert cli("say", "api", "hello").returncode == 0
    (initialized.agent_dir("broken") / "agent.json").write_text("{")
    data = run_json(cli, "list", model=shapes.AgentList, code=EXIT_CORRUPT)
    check(data, LIST)
    [api] = data["agents"]
    assert (api["name"], api["status"], api["kind"], api["runtime"]) == ("api", "running", "joined", "manual")
    assert (api["intent"], api["unread"], api["command"]) == ("design the endpoints", 1, [])
    [problem] = data["problems"]
    assert problem["path"] == str(initialized.agent_dir("broken") / "agent.json")


def test_list_json_with_no_agents_has_empty_lists(initialized: repo_mod.Repo, cli: CliRunner) -> None:
    data = run_json(cli, "list", model=shapes.AgentList)
    check(data, LIST)
    assert data["agents"] == data["problems"] == []


def test_say_json_has_one_message_per_recipient(initialized: repo_mod.Repo, cli: CliRunner) -> None:
    for name in ("api", "ui"):
        assert cli("join", name).returncode == 0
    one = run_json(cli, "say", "api", "hi", "--subject", "a subject", "--reply-to", "an-id", model=shapes.Sent)
    check(one, SENT)
    [msg] = one["sent"]
    assert (msg["from"], msg["to"], msg["subject"], msg["reply_to"], msg["read"]) == (
        "chessmaster",
        "api",
        "a subject",
        "an-id",
        False,
    )
    everyone = run_json(cli, "say", "*", "stand-up", "--from", "api", model=shapes.Sent)
    check(everyone, SENT)
    assert [m["to"] for m in everyone["sent"]] == ["ui"]
    assert everyone["sent"][0]["subject"] is None


def test_inbox_json_pins_messages_and_problems(initialized: repo_mod.Repo, cli: CliRunner) -> None:
    assert cli("join", "api").returncode == 0
    assert cli("say", "api", "first").returncode == 0
    unread = run_json(cli, "inbox", "api", model=shapes.Inbox)
    check(unread, INBOX)
    assert [(m["body"], m["read"]) for m in unread["messages"]] == [("first", False)]
    assert cli("say", "api", "second").returncode == 0
    (initialized.inbox_dir("api") / "new" / "0-corrupt").write_text("no headers here")
    everything = run_json(cli, "inbox", "api", "--all", model=shapes.Inbox, code=EXIT_CORRUPT)
    check(everything, INBOX)
    assert [(m["body"], m["read"]) for m in everything["messages"]] == [("first", True), ("second", False)]
    [problem] = everything["problems"]
    assert problem["path"].endswith("0-corrupt")


def test_intent_json_when_read_and_when_set(initialized: repo_mod.Repo, cli: CliRunner) -> None:
    assert cli("join", "api").returncode == 0
    shown = run_json(cli, "intent", "api", model=shapes.Intent)
    check(shown, INTENT)
    assert shown == {"version": 1, "agent": "api", "intent": ""}
    changed = run_json(cli, "intent", "api", "write the tests", model=shapes.Intent)
    check(changed, INTENT)
    assert changed["intent"] == "write the tests"


def test_join_json_env_has_the_documented_variables(initialized: repo_mod.Repo, cli: CliRunner) -> None:
    data = run_json(cli, "join", "api", model=shapes.Joined)
    check(data, JOINED)
    assert set(data["env"]) == ENV_ALWAYS
    assert all(type(v) is str for v in data["env"].values())
    assert data["env"]["FRACTA_AGENT"] == "api"
    assert data["env"]["FRACTA_HOME"] == str(initialized.state)
    # With a control plane running, join also says where it is. This process stands in for it.
    me = os.getpid()
    control = {"schema": 1, "pid": me, "pid_start": processes.start_time(me), "started_at": clock.now()}
    control |= {"url": "http://127.0.0.1:9", "gateway_url": "http://127.0.0.1:8/mcp"}
    initialized.control_path.write_text(json.dumps(control))
    data = run_json(cli, "join", "ui", model=shapes.Joined)
    check(data, JOINED)
    assert set(data["env"]) == ENV_ALWAYS | ENV_WITH_CONTROL_PLANE


def test_error_shape_used_by_the_http_api() -> None:
    data = results.error(AgentNotFound("no agent named 'x'", "run fracta list to see the agents"))
    check(data, ERROR)
    assert data["error"]["type"] == "AgentNotFound"


def test_the_agent_shape_is_the_record_plus_unread_last_activity_waiting_and_state() -> None:
    record = {f for f in agents.Agent.__dataclass_fields__}
    assert record | {"unread", "last_activity", "waiting", "state", "state_reason"} == set(AGENT), (
        "agent.json changed: update docs/json.md and AGENT"
    )
    assert {s.value for s in agents.Status} == STATUSES


def test_docs_describe_every_pinned_field() -> None:
    text = DOCS.read_text()
    pinned = set(AGENT) | set(MESSAGE) | set(PROBLEM) | set(LIST) | set(INBOX) | set(SENT) | set(INTENT)
    pinned |= set(JOINED) | set(ERROR) | set(ERROR["error"]) | ENV_ALWAYS | ENV_WITH_CONTROL_PLANE | STATUSES
    undocumented = sorted(key for key in pinned if f"`{key}`" not in text)
    assert not undocumented, f"docs/json.md does not mention {undocumented}"


def test_peek_and_kill_json_validate_against_their_models(initialized: repo_mod.Repo, cli: CliRunner) -> None:
    assert cli("join", "api").returncode == 0
    peeked = run_json(cli, "peek", "api", model=shapes.Peek)
    assert (peeked["agent"], peeked["status"], peeked["events"]) == ("api", "running", [])
    killed = run_json(cli, "kill", "api", model=shapes.Killed)
    assert (killed["agent"], killed["saved"]) == ("api", None)


def test_doctor_json_validates_against_its_model(initialized: repo_mod.Repo, cli: CliRunner) -> None:
    result = cli("doctor", "--json")
    assert result.returncode in {0, 1}, result.stderr
    report = shapes.Doctor.model_validate_json(result.stdout)
    assert report.ok is (result.returncode == 0) and report.checks


def test_a_model_refuses_a_document_with_a_missing_or_unknown_key_or_a_wrong_type() -> None:
    good = {"version": 1, "agent": "api", "intent": ""}
    shapes.Intent.model_validate_json(json.dumps(good))
    for bad in ({"version": 1, "agent": "api"}, good | {"extra": 1}, good | {"intent": None}, good | {"version": 2}):
        try:
            shapes.Intent.model_validate_json(json.dumps(bad))
        except ValueError:
            continue
        raise AssertionError(f"the Intent model accepted {bad}")


def test_the_pinned_shapes_are_the_models_shapes() -> None:
    pinned = {
        shapes.Agent: AGENT, shapes.Message: MESSAGE, shapes.Problem: PROBLEM, shapes.AgentList: LIST,
        shapes.Inbox: INBOX, shapes.Sent: SENT, shapes.Intent: INTENT, shapes.Joined: JOINED, shapes.Error: ERROR,
        shapes.ErrorDetail: ERROR["error"],
    }  # fmt: skip
    for model, shape in pinned.items():
        assert keys(model) == list(shape), f"{model.__name__} and this test's pinned shape differ"
