"""Corrupt records: a clear error naming the file, never a traceback, never the loss of anything else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import CliRunner
from helpers.expect import clean_error, inbox_files

from fracta import mailbox, project
from fracta import repo as repo_mod
from fracta.errors import EXIT_CORRUPT, EXIT_USAGE


def spoil_record(raw: bytes, how: str) -> bytes:
    record = json.loads(raw)
    if how == "truncated":
        return raw[: len(raw) // 2]
    if how == "empty":
        return b""
    if how == "garbage":
        return b"\x00\xff\xfe\x89PNG not a record"
    if how == "not-an-object":
        return b"[1, 2, 3]\n"
    if how == "future-schema":
        return json.dumps({**record, "schema": 99}).encode()
    if how == "missing-status":
        return json.dumps({k: v for k, v in record.items() if k != "status"}).encode()
    assert how == "unknown-status"
    return json.dumps({**record, "status": "sleeping"}).encode()


RECORD_PROBLEMS = {
    "truncated": "not valid JSON",
    "empty": "empty file",
    "garbage": "not valid JSON",
    "not-an-object": "expected a JSON object, found list",
    "future-schema": "schema version 99, this fracta reads version 1",
    "missing-status": "missing or invalid field",
    "unknown-status": "missing or invalid field",
}


@pytest.fixture
def trio(initialized: repo_mod.Repo) -> repo_mod.Repo:
    for name in ("alpha", "bravo", "charlie"):
        project.join(initialized, name, intent=f"{name} at work")
    return initialized


def test_a_truncated_agent_record_is_named_and_never_takes_down_the_others(trio: repo_mod.Repo, cli: CliRunner) -> None:
    path = trio.agent_dir("bravo") / "agent.json"
    spoiled = spoil_record(path.read_bytes(), "truncated")
    path.write_bytes(spoiled)
    says = f"corrupt record {path}: not valid JSON"

    listed = cli("list")
    assert listed.returncode == EXIT_CORRUPT
    assert [line.split()[0] for line in listed.stdout.splitlines()[1:-1]] == ["alpha", "charlie"]
    assert listed.stdout.splitlines()[-1].startswith("agents 2: ")
    assert listed.stderr.startswith(f"warning: {says}"), listed.stderr
    assert "Traceback" not in listed.stderr

    as_json = cli("list", "--json")
    assert as_json.returncode == EXIT_CORRUPT
    data = json.loads(as_json.stdout)
    assert [a["name"] for a in data["agents"]] == ["alpha", "charlie"]
    assert [p["path"] for p in data["problems"]] == [str(path)]
    assert data["problems"][0]["error"].startswith(says)

    # Commands aimed at the broken agent say what is wrong, and never overwrite the evidence.
    clean_error(cli("intent", "bravo"), EXIT_CORRUPT, says, "move it aside")
    clean_error(cli("intent", "bravo", "carry on"), EXIT_CORRUPT, says)
    assert path.read_bytes() == spoiled
    # Everything else keeps working, and progress.md shows the problem in bravo's row.
    assert cli("say", "alpha", "still there?").returncode == 0
    assert cli("intent", "charlie", "unaffected").returncode == 0
    progress = cli("progress")
    assert progress.returncode == 0, progress.stderr
    assert "| alpha | running | alpha at work |" in progress.stdout
    assert "| charlie | running | unaffected |" in progress.stdout
    assert "| bravo | corrupt record |" in progress.stdout
    assert path.read_bytes() == spoiled


def test_every_kind_of_corrupt_agent_record_is_reported_with_its_file_and_problem(
    initialized: repo_mod.Repo, cli: CliRunner
) -> None:
    spoiled: dict[str, bytes] = {}
    for how in RECORD_PROBLEMS:
        project.join(initialized, how)
        path = initialized.agent_dir(how) / "agent.json"
        spoiled[how] = spoil_record(path.read_bytes(), how)
        path.write_bytes(spoiled[how])
    project.join(initialized, "healthy")

    listed = cli("list", "--json")
    assert listed.returncode == EXIT_CORRUPT
    data = json.loads(listed.stdout)
    assert [a["name"] for a in data["agents"]] == ["healthy"]
    reported = {Path(p["path"]).parent.name: p["error"] for p in data["problems"]}
    assert sorted(reported) == sorted(RECORD_PROBLEMS)
    as_text = cli("list")
    assert as_text.returncode == EXIT_CORRUPT
    assert as_text.stdout.splitlines()[1].split()[0] == "healthy"
    assert "Traceback" not in as_text.stderr
    for how, problem in RECORD_PROBLEMS.items():
        path = initialized.agent_dir(how) / "agent.json"
        assert reported[how].startswith(f"corrupt record {path}: {problem}")
        assert f"warning: corrupt record {path}: {problem}" in as_text.stderr
        clean_error(cli("intent", how), EXIT_CORRUPT, f"corrupt record {path}: {problem}")
        assert path.read_bytes() == spoiled[how]


def spoil_message(raw: bytes, how: str) -> bytes:
    if how == "truncated":
        return raw[:12]
    if how == "empty":
        return b""
    if how == "not-utf8":
        return raw.replace(b"second", b"\xff\xfe\xfd")
    if how == "future-schema":
        return raw.replace(b"fracta-message: 1\n", b"fracta-message: 9\n")
    if how == "edited-body":
        return raw.replace(b"second line", b"second lime")
    assert how == "missing-header"
    return b"".join(line for line in raw.splitlines(keepends=True) if not line.startswith(b"from: "))


MESSAGE_PROBLEMS = {
    "truncated": "no blank line between headers and body",
    "empty": "no blank line between headers and body",
    "not-utf8": "not UTF-8 text",
    "future-schema": "message schema '9', expected 1",
    "edited-body": "the body does not match its body-crc32: the file was damaged or edited",
    "missing-header": "missing header 'from'",
}


def test_a_corrupt_message_is_reported_left_in_place_and_the_others_delivered(
    trio: repo_mod.Repo, cli: CliRunner
) -> None:
    for body in ("first", "second", "third"):
        mailbox.send(trio, "chessmaster", "alpha", body)
    new = trio.inbox_dir("alpha") / "new"
    second = next(p for p in new.iterdir() if p.read_bytes().endswith(b"\n\nsecond"))
    spoiled = spoil_message(second.read_bytes(), "truncated")
    second.write_bytes(spoiled)
    says = f"corrupt record {second}: no blank line between headers and body"

    first_read = cli("inbox", "alpha", "--json")
    assert first_read.returncode == EXIT_CORRUPT
    data = json.loads(first_read.stdout)
    assert [m["body"] for m in data["messages"]] == ["first", "third"]
    assert data["problems"] == [{"path": str(second), "error": data["problems"][0]["error"]}]
    assert data["problems"][0]["error"].startswith(says)
    assert first_read.stderr.startswith(f"warning: {says}")
    assert "Traceback" not in first_read.stderr
    # Not lost: still there, untouched, still unread, and reported again on the next read.
    assert second.read_bytes() == spoiled
    listed = cli("list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {a["name"]: a["unread"] for a in json.loads(listed.stdout)["agents"]}["alpha"] == 1
    again = cli("inbox", "alpha")
    assert again.returncode == EXIT_CORRUPT
    assert again.stdout == "no unread messages\n"
    assert says in again.stderr
    # Later messages still arrive; the read history (--all) is intact.
    assert cli("say", "alpha", "fourth").returncode == 0
    later = cli("inbox", "alpha", "--all", "--json")
    assert later.returncode == EXIT_CORRUPT
    assert [(m["body"], m["read"]) for m in json.loads(later.stdout)["messages"]] == [
        ("first", True),
        ("third", True),
        ("fourth", False),
    ]
    assert second.read_bytes() == spoiled


def test_every_kind_of_corrupt_message_is_reported_with_its_file_and_the_rest_delivered(
    trio: repo_mod.Repo, cli: CliRunner
) -> None:
    new = trio.inbox_dir("alpha") / "new"
    spoiled: dict[Path, tuple[bytes, str]] = {}
    mailbox.send(trio, "chessmaster", "alpha", "before")
    for how, problem in MESSAGE_PROBLEMS.items():
        (msg,) = mailbox.send(trio, "bravo", "alpha", f"will be {how}\nsecond line")
        path = new / msg.id
        spoiled[path] = (spoil_message(path.read_bytes(), how), problem)
        path.write_bytes(spoiled[path][0])
    mailbox.send(trio, "charlie", "alpha", "after")

    result = cli("inbox", "alpha", "--json")
    assert result.returncode == EXIT_CORRUPT
    data = json.loads(result.stdout)
    assert [m["body"] for m in data["messages"]] == ["before", "after"]
    reported = {Path(p["path"]): p["error"] for p in data["problems"]}
    assert sorted(reported) == sorted(spoiled)
    for path, (raw, problem) in spoiled.items():
        assert reported[path].startswith(f"corrupt record {path}: {problem}")
        assert path.read_bytes() == raw


def test_a_corrupt_message_already_read_is_reported_by_inbox_all(trio: repo_mod.Repo, cli: CliRunner) -> None:
    mailbox.send(trio, "alpha", "bravo", "kept")
    mailbox.send(trio, "alpha", "bravo", "spoiled")
    box = mailbox.read(trio, "bravo")
    assert [m.body for m in box.messages] == ["kept", "spoiled"]
    mailbox.acknowledge(trio, "bravo", box.receipt)  # read: into cur/
    cur = trio.inbox_dir("bravo") / "cur"
    victim = next(p for p in cur.iterdir() if p.read_bytes().endswith(b"spoiled"))
    victim.write_bytes(b"\x00\x01")
    result = cli("inbox", "bravo", "--all", "--json")
    assert result.returncode == EXIT_CORRUPT
    data = json.loads(result.stdout)
    assert [m["body"] for m in data["messages"]] == ["kept"]
    assert [p["path"] for p in data["problems"]] == [str(victim)]
    assert victim.read_bytes() == b"\x00\x01"


@pytest.mark.parametrize(
    ("yaml_text", "says"),
    [
        ("mailbox: [unclosed\n", "fracta.yaml:2:1: not valid YAML: expected ',' or ']'"),
        ("- just\n- a list\n", "fracta.yaml:1: the top level must be a mapping of settings"),
        (
            "mailbox:\n  max_message_bytes: lots\n",
            "mailbox.max_message_bytes in fracta.yaml must be an integer, not 'lots'",
        ),
        ("mailbox:\n  max_message_bytes: 0\n", "mailbox.max_message_bytes in fracta.yaml must be at least 1, not 0"),
        (
            "mailbox:\n  max_message_bytes: ${FRACTA_TEST_LIMIT}\n",
            "mailbox.max_message_bytes in fracta.yaml needs environment variable(s) FRACTA_TEST_LIMIT",
        ),
    ],
    ids=["bad-yaml", "not-a-mapping", "not-an-integer", "too-small", "unset-variable"],
)
def test_a_bad_fracta_yaml_is_a_clear_error_and_nothing_is_sent(
    trio: repo_mod.Repo, cli: CliRunner, yaml_text: str, says: str
) -> None:
    trio.config_path.write_text(yaml_text)
    clean_error(cli("say", "alpha", "hello"), EXIT_USAGE, says)
    assert inbox_files(trio.state) == []


def test_fracta_yaml_variables_come_from_the_environment(trio: repo_mod.Repo, cli: CliRunner) -> None:
    trio.config_path.write_text("mailbox:\n  max_message_bytes: ${FRACTA_TEST_LIMIT:-8}\n")
    clean_error(cli("say", "alpha", "123456789"), EXIT_USAGE, "the message is 9 bytes; the limit is 8")
    clean_error(cli("say", "alpha", "12345", env={"FRACTA_TEST_LIMIT": "4"}), EXIT_USAGE, "5 bytes; the limit is 4")
    assert cli("say", "alpha", "1234", env={"FRACTA_TEST_LIMIT": "4"}).returncode == 0
    assert inbox_files(trio.state) != []


def test_a_corrupt_last_action_snapshot_never_stops_progress(trio: repo_mod.Repo, cli: CliRunner) -> None:
    (trio.chessmaster_dir / "last_action.json").write_bytes(b"{ half")
    result = cli("progress")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# fracta progress\n")
    assert result.stdout.endswith("## Chessmaster's last action\n\nNone yet.\n")


def test_a_stray_folder_among_the_agents_is_reported_and_the_agents_still_listed(
    trio: repo_mod.Repo, cli: CliRunner
) -> None:
    stray = trio.agents_dir / "Not An Agent"
    stray.mkdir()
    (stray / "agent.json").write_text("{}")
    listed = cli("list", "--json")
    assert listed.returncode == EXIT_CORRUPT
    data = json.loads(listed.stdout)
    assert [a["name"] for a in data["agents"]] == ["alpha", "bravo", "charlie"]
    assert [p["path"] for p in data["problems"]] == [str(stray / "agent.json")]
    assert (stray / "agent.json").read_text() == "{}"
