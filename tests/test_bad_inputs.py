"""Every bad name and bad input, through the real CLI: a clear message, a named exit code, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import CliRunner
from helpers.expect import clean_error, inbox_files, tree

from fracta import project
from fracta import repo as repo_mod
from fracta.errors import EXIT_CONFLICT, EXIT_NOT_FOUND, EXIT_USAGE

RULE = "use lowercase letters, digits and single dashes, starting with a letter and ending with a letter or digit"


@pytest.fixture
def team(initialized: repo_mod.Repo) -> repo_mod.Repo:
    """An initialized repo with agents `api` (intent "design endpoints") and `web`."""
    project.join(initialized, "api", intent="design endpoints")
    project.join(initialized, "web")
    return initialized


def set_limit(repo: repo_mod.Repo, limit: int) -> None:
    text = repo.config_path.read_text()
    assert "max_message_bytes: 65536" in text
    repo.config_path.write_text(text.replace("max_message_bytes: 65536", f"max_message_bytes: {limit}"))


def unread(cli: CliRunner) -> dict[str, int]:
    listed = cli("list", "--json")
    assert listed.returncode == 0, listed.stderr
    return {a["name"]: a["unread"] for a in json.loads(listed.stdout)["agents"]}


BAD_NAMES = [
    ("../x", f"the agent name '../x' is not allowed: {RULE}"),
    ("a/b", f"the agent name 'a/b' is not allowed: {RULE}"),
    ("A B", f"the agent name 'A B' is not allowed: {RULE}"),
    ("Api", f"the agent name 'Api' is not allowed: {RULE}"),
    ("", "the agent name is empty"),
    ("a" * 41, "is 41 characters long; the limit is 40"),
    ("-x", f"the agent name '-x' is not allowed: {RULE}"),
    ("x-", f"the agent name 'x-' is not allowed: {RULE}"),
    ("a--b", f"the agent name 'a--b' is not allowed: {RULE}"),
    ("1st", f"the agent name '1st' is not allowed: {RULE}"),
    ("a_b", f"the agent name 'a_b' is not allowed: {RULE}"),
    ("a.b", f"the agent name 'a.b' is not allowed: {RULE}"),
    ("café", f"the agent name 'café' is not allowed: {RULE}"),
    ("chessmaster", "the agent name 'chessmaster' is reserved"),
    ("main", "the agent name 'main' is reserved"),
    ("head", "the agent name 'head' is reserved"),
    ("new", "the agent name 'new' is reserved"),
]


def test_join_refuses_every_bad_name_with_the_rule_and_writes_nothing(
    initialized: repo_mod.Repo, cli: CliRunner, tmp_path: Path
) -> None:
    before = tree(tmp_path)
    for name, says in BAD_NAMES:
        clean_error(cli("join", "--", name), EXIT_USAGE, says)
    assert tree(tmp_path) == before


def test_names_at_the_limits_are_accepted(initialized: repo_mod.Repo, cli: CliRunner) -> None:
    for name in ("a" * 40, "x", "a-b-c", "agent2", "fix-login-9"):
        result = cli("join", name)
        assert result.returncode == 0, (name, result.stderr)
    assert sorted(unread(cli)) == sorted(["a" * 40, "x", "a-b-c", "agent2", "fix-login-9"])


@pytest.mark.parametrize("bad", ["../x", "../chessmaster", "../../..", "A B", ""])
def test_every_command_refuses_a_bad_name_before_touching_a_file(
    team: repo_mod.Repo, cli: CliRunner, tmp_path: Path, bad: str
) -> None:
    before = tree(tmp_path)
    says = "the agent name is empty" if bad == "" else f"the agent name {bad!r} is not allowed"
    for argv in (
        ("say", bad, "hello"),
        ("say", "api", "hello", "--from", bad),
        ("inbox", bad),
        ("intent", bad),
        ("intent", bad, "new intent"),
    ):
        clean_error(cli(*argv), EXIT_USAGE, says)
    # ../chessmaster and ../../.. name folders that exist: no lock file or record may appear there.
    assert tree(tmp_path) == before


def test_a_reserved_name_is_refused_where_an_agent_is_meant(team: repo_mod.Repo, cli: CliRunner) -> None:
    clean_error(cli("intent", "chessmaster", "plan"), EXIT_USAGE, "the agent name 'chessmaster' is reserved")
    clean_error(cli("say", "main", "hello"), EXIT_USAGE, "the agent name 'main' is reserved")


def test_unknown_recipient_is_an_error_and_nothing_is_written_anywhere(
    team: repo_mod.Repo, cli: CliRunner, tmp_path: Path
) -> None:
    before = tree(tmp_path)
    clean_error(cli("say", "ghost", "hello"), EXIT_NOT_FOUND, "cannot send to 'ghost': no such agent", "fracta list")
    clean_error(cli("say", "ghost", "hello", "--from", "api"), EXIT_NOT_FOUND, "cannot send to 'ghost'")
    assert tree(tmp_path) == before
    assert inbox_files(team.state) == []


def test_unknown_sender_is_an_error_and_nothing_is_written(team: repo_mod.Repo, cli: CliRunner, tmp_path: Path) -> None:
    before = tree(tmp_path)
    clean_error(cli("say", "api", "hello", "--from", "ghost"), EXIT_NOT_FOUND, "unknown sender 'ghost'")
    clean_error(cli("say", "*", "hello", "--from", "ghost"), EXIT_NOT_FOUND, "unknown sender 'ghost'")
    assert tree(tmp_path) == before


def test_a_message_over_the_configured_size_bound_is_refused_and_nothing_is_written(
    team: repo_mod.Repo, cli: CliRunner, tmp_path: Path
) -> None:
    set_limit(team, 100)
    before = tree(tmp_path)
    clean_error(cli("say", "api", "a" * 101), EXIT_USAGE, "the message is 101 bytes; the limit is 100")
    # The bound is in bytes, not characters.
    clean_error(cli("say", "api", "é" * 51), EXIT_USAGE, "the message is 102 bytes; the limit is 100")
    clean_error(cli("say", "*", "a" * 101), EXIT_USAGE, "the limit is 100")
    assert tree(tmp_path) == before
    assert cli("say", "api", "a" * 100).returncode == 0
    got = json.loads(cli("inbox", "api", "--json").stdout)["messages"]
    assert [m["body"] for m in got] == ["a" * 100]


def test_the_default_size_bound_is_64_kib(team: repo_mod.Repo, cli: CliRunner, tmp_path: Path) -> None:
    before = tree(tmp_path)
    clean_error(cli("say", "api", "a" * 65537), EXIT_USAGE, "the message is 65537 bytes; the limit is 65536")
    assert tree(tmp_path) == before
    assert cli("say", "api", "a" * 65536).returncode == 0


def test_an_empty_message_or_a_multi_line_subject_is_refused(
    team: repo_mod.Repo, cli: CliRunner, tmp_path: Path
) -> None:
    before = tree(tmp_path)
    for body in ("", " ", "\n\n", " \t\r\n "):
        clean_error(cli("say", "api", body), EXIT_USAGE, "the message is empty")
    clean_error(cli("say", "api", "hello", "--subject", "one\ntwo"), EXIT_USAGE, "the subject must be one line")
    clean_error(cli("say", "api", "hello", "--reply-to", "one\rtwo"), EXIT_USAGE, "the reply-to must be one line")
    assert tree(tmp_path) == before


def test_an_intent_over_the_bound_is_refused_and_the_old_one_kept(
    team: repo_mod.Repo, cli: CliRunner, tmp_path: Path
) -> None:
    record = team.agent_dir("api") / "agent.json"
    before = record.read_bytes()
    clean_error(cli("intent", "api", "x" * 201), EXIT_USAGE, "the intent is 201 characters long; the limit is 200")
    assert record.read_bytes() == before
    assert cli("intent", "api").stdout == "design endpoints\n"
    # Joining with an over-long intent creates nothing.
    snapshot = tree(tmp_path)
    clean_error(cli("join", "docs", "--intent", "x" * 201), EXIT_USAGE, "the limit is 200")
    assert tree(tmp_path) == snapshot
    assert cli("intent", "api", "x" * 200).returncode == 0
    assert cli("intent", "api").stdout == "x" * 200 + "\n"


def test_an_intent_with_line_breaks_is_folded_into_one_line(team: repo_mod.Repo, cli: CliRunner) -> None:
    result = cli("intent", "api", "  write the\nlogin  form\r\n\tthen test it \n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "write the login form then test it\n"
    assert cli("intent", "api").stdout == "write the login form then test it\n"
    assert (
        json.loads((team.agent_dir("api") / "agent.json").read_text())["intent"] == "write the login form then test it"
    )
    progress = team.progress_path.read_text()
    assert "| api | running | write the login form then test it |" in progress
    assert cli("join", "docs", "--intent", "read\nthe docs").returncode == 0
    assert cli("intent", "docs").stdout == "read the docs\n"


def test_an_unknown_agent_is_an_error_for_inbox_and_intent(team: repo_mod.Repo, cli: CliRunner, tmp_path: Path) -> None:
    before = tree(tmp_path)
    clean_error(cli("inbox", "ghost"), EXIT_NOT_FOUND, "no agent named 'ghost'", "fracta list")
    clean_error(cli("inbox", "ghost", "--json"), EXIT_NOT_FOUND, "no agent named 'ghost'")
    clean_error(cli("intent", "ghost"), EXIT_NOT_FOUND, "no agent named 'ghost'")
    clean_error(cli("intent", "ghost", "plan"), EXIT_NOT_FOUND, "no agent named 'ghost'")
    assert tree(tmp_path) == before


def test_joining_twice_is_refused_and_keeps_the_first_record(
    team: repo_mod.Repo, cli: CliRunner, tmp_path: Path
) -> None:
    before = tree(tmp_path)
    clean_error(cli("join", "api", "--intent", "something else"), EXIT_CONFLICT, "an agent named 'api' already exists")
    assert tree(tmp_path) == before
    assert cli("intent", "api").stdout == "design endpoints\n"


def test_a_broadcast_reaches_every_agent_but_the_sender(team: repo_mod.Repo, cli: CliRunner) -> None:
    assert cli("join", "docs").returncode == 0
    from_api = cli("say", "*", "standup in five", "--from", "api")
    assert from_api.returncode == 0, from_api.stderr
    assert unread(cli) == {"api": 0, "web": 1, "docs": 1}
    from_chessmaster = cli("say", "*", "main moved", "--json")
    assert from_chessmaster.returncode == 0, from_chessmaster.stderr
    assert sorted(m["to"] for m in json.loads(from_chessmaster.stdout)["sent"]) == ["api", "docs", "web"]
    assert unread(cli) == {"api": 1, "web": 2, "docs": 2}
    mine = json.loads(cli("inbox", "chessmaster", "--json").stdout)
    assert mine["messages"] == []
    web = json.loads(cli("inbox", "web", "--json").stdout)["messages"]
    assert [(m["from"], m["to"], m["body"]) for m in web] == [
        ("api", "web", "standup in five"),
        ("chessmaster", "web", "main moved"),
    ]
