"""fracta.yaml is checked as a whole against one schema, by every face that starts something.

Each bad configuration goes through the real `fracta up`, `spawn` and `doctor` (subprocesses):
exit code 2, the file, the line and the dotted key named, and nothing started. The schema, the
defaults, the template `fracta init` writes and docs/config.md are kept in agreement.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import CliRunner
from lifecycle_helpers import cleanup

from fracta import config, config_check, config_reference, config_schema, doctor, runtimes
from fracta import repo as repo_mod
from fracta.control import daemon
from fracta.errors import ConfigError

PROFILE = "auth:\n  credentials:\n    profiles:\n      p:\n"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "config.md"

# name -> (what replaces the template's line, or is appended; line of the problem; key; words said)
BAD = {
    "mistyped top-level key": ("append", "agnets:\n  max_agents: 2\n", "agnets", "did you mean 'agents'"),
    "mistyped nested key": ("control_plane", "  prot: 9000\n", "control_plane.prot", "did you mean 'port'"),
    "max_agents 0": ("agents", "  max_agents: 0\n", "agents.max_agents", "greater than or equal to 1"),
    "port not a number": ("gateway", "  port: ninety\n", "gateway.port", "valid integer, not 'ninety'"),
    "unset variable": ("control_plane", "  port: ${FRACTA_TEST_UNSET_PORT}\n", "control_plane.port", "not set"),
    "YAML syntax error": ("agents", "  max_agents: : 4\n", None, "not valid YAML: mapping values are not allowed"),
}


def write_bad(r: repo_mod.Repo, case: str) -> int:
    """Put the bad case into fracta.yaml; returns the line the problem is on."""
    where, text, _, _ = BAD[case]
    lines = r.config_path.read_text().splitlines(keepends=True)
    if where == "append":
        at = len(lines)
        lines.append(text)
    else:  # replace the section's line of that key, or add it right after the section's own
        section = lines.index(f"{where}:\n")
        same = [i for i in range(section + 1, len(lines)) if lines[i].startswith(text.split(":")[0] + ":")]
        at = same[0] if same else section + 1
        lines[at : at + bool(same)] = [text]
    r.config_path.write_text("".join(lines))
    return at + 1


def assert_named(output: str, r: repo_mod.Repo, case: str, line: int) -> None:
    _, _, key, words = BAD[case]
    assert f"{r.config_path}:{line}" in output, output
    assert words in output, output
    assert key is None or f": {key}: " in output, output
    assert "<unicode string>" not in output


def assert_nothing_started(r: repo_mod.Repo) -> None:
    assert not r.control_path.exists()
    assert not (r.logs_dir / "control.out").exists()  # no control plane was even launched
    assert daemon.read_info(r) is None
    assert [p.name for p in r.agents_dir.iterdir()] == []
    assert [p.name for p in r.missions_dir.iterdir()] == []
    if os.path.isdir("/proc"):  # no process of any kind serves this state folder
        state = str(r.state).encode()
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
                except OSError:
                    continue
                assert b"fracta.control.server\0" + state not in cmdline


@pytest.mark.parametrize("command", ["up", "spawn", "doctor"])
@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_config_stops_up_spawn_and_doctor_with_exit_2_naming_file_line_and_key(
    initialized: repo_mod.Repo, cli: CliRunner, case: str, command: str
) -> None:
    r = initialized
    line = write_bad(r, case)
    args = {"up": ["up"], "spawn": ["spawn", "task", "--", "true"], "doctor": ["doctor"]}[command]
    with cleanup(r):
        result = cli(*args)
        assert result.returncode == 2, (result.stdout, result.stderr)
        assert_named(result.stderr if command != "doctor" else result.stdout, r, case, line)
        assert_nothing_started(r)
    if command == "doctor":
        assert "everything fracta needs is in order" not in result.stdout


def test_every_problem_of_a_file_is_named_at_once(initialized: repo_mod.Repo) -> None:
    r = initialized
    text = r.config_path.read_text().replace("  max_agents: 4", "  max_agents: -1\n  wake: perhaps")
    r.config_path.write_text(text + "agnets: {}\nmcp_servers:\n  web:\n    comand: x\n")
    with pytest.raises(ConfigError) as err:
        config_check.check(r.config_path, env={})
    lines = err.value.message.splitlines()
    keys = [re.sub(r"^.*?:\d+: ([^:]+): .*$", r"\1", line) for line in lines]
    assert keys == ["agents.max_agents", "agents.wake", "agnets", "mcp_servers.web.comand"], lines
    assert "given twice" in lines[1]  # the template's own `wake: true` after ours: YAML keeps only it
    assert "mcp_servers.web.comand: unknown key (did you mean 'command'?)" in err.value.message
    assert "4 problems" in err.value.hint and "docs/config.md" in err.value.hint


@pytest.mark.parametrize(
    ("yaml_text", "key", "words"),
    [
        ("agents:\n  agent_runtimes:\n    claud: {}\n", "agents.agent_runtimes.claud", "did you mean 'claude'"),
        (
            "agents:\n  agent_runtimes:\n    codex:\n      nativ: true\n",
            "agents.agent_runtimes.codex.nativ",
            "'native'",
        ),
        ("agents:\n  agent_runtimes:\n    codex:\n      native: maybe\n", "agents.agent_runtimes.codex.native", "bool"),
        ("agents:\n  agent_runtimes:\n    claude:\n      env: {FRACTA_X: y}\n", "claude.env", "fracta's own"),
        ("agents:\n  agent_runtimes:\n    claude:\n      auth_profile: nope\n", "claude.auth_profile", "'nope'"),
        ("agents:\n  default_runtime: cluade\n", "agents.default_runtime", "'claude'"),
        ("hooks:\n  subscribers: {b: 3}\n", "hooks.subscribers.b", "valid string or a valid list"),
        ("reaper:\n  sweep_interval: 0\n", "reaper.sweep_interval", "greater than or equal to 1"),
        ("control_plane:\n  port: 70000\n", "control_plane.port", "less than or equal to 65535"),
        ("mcp_servers:\n  a__b:\n    command: x\n", "mcp_servers.a__b", "single '_'"),
        ("mcp_servers:\n  web:\n    url: http://x\n    args: [a]\n", "mcp_servers.web", "do(es) not apply"),
        ("mcp_servers:\n  web:\n    command: x\n    url: http://x\n", "mcp_servers.web", "exactly one of"),
        (
            PROFILE + "        resolver: {env: X, file: y}\n        bindings: {env: Y}\n",
            "auth.credentials.profiles.p.resolver",
            "exactly one of command, env or file",
        ),
        (
            PROFILE + "        resolver: {env: X}\n        bindings: [{file: ../x}]\n",
            "auth.credentials.profiles.p.bindings[0]",
            "plain relative name",
        ),
        (
            "agents:\n  agent_runtimes:\n    codex: {auth_profile: p}\n"
            "auth:\n  credentials:\n    profiles:\n      p:\n        resolver: {env: X}\n"
            "        bindings: [{claude_api_key_helper: true}]\n",
            "agents.agent_runtimes.codex.auth_profile",
            "not Claude",
        ),
    ],
)
def test_sections_checked_by_their_own_modules_before_are_checked_by_the_schema_too(
    tmp_path: Path, yaml_text: str, key: str, words: str
) -> None:
    path = tmp_path / "fracta.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as err:
        config_check.check(path, env={})
    assert key in err.value.message and words in err.value.message, err.value.message
    assert re.match(rf"{re.escape(str(path))}:\d+: ", err.value.message)


def test_variables_of_runtimes_servers_and_resolvers_are_left_for_where_they_are_used(tmp_path: Path) -> None:
    path = tmp_path / "fracta.yaml"
    path.write_text(
        "agents:\n  agent_runtimes:\n    codex:\n      env: {OPENAI_API_KEY: '${NO_KEY}'}\n"
        "mcp_servers:\n  search:\n    url: https://s/mcp\n    headers: {Authorization: 'Bearer ${NO_TOKEN}'}\n"
        "control_plane:\n  port: ${SOME_PORT:-0}\n"
    )
    checked = config_check.check(path, env={})
    assert checked.deferred == {
        "agents.agent_runtimes.codex.env.OPENAI_API_KEY": ["NO_KEY"],
        "mcp_servers.search.headers.Authorization": ["NO_TOKEN"],
    }
    assert checked.settings.control_plane.port == 0


def test_doctor_warns_of_a_backend_server_whose_variable_is_unset(initialized: repo_mod.Repo) -> None:
    r = initialized
    r.config_path.write_text(
        r.config_path.read_text() + "mcp_servers:\n  search:\n    url: https://s/mcp\n"
        "    headers: {Authorization: 'Bearer ${FRACTA_TEST_NO_TOKEN}'}\n"
    )
    checks = doctor.check_config(repo_mod.find(r.root, env={}))
    assert [(c.name, c.status) for c in checks] == [("fracta.yaml", "ok"), ("mcp_servers.search", "warn")]
    assert "FRACTA_TEST_NO_TOKEN" in checks[1].detail and "skipped" in checks[1].detail


def test_a_yaml_error_names_the_file_and_its_own_line_on_every_path(tmp_path: Path) -> None:
    path = tmp_path / "fracta.yaml"
    path.write_text("agents:\n  max_agents: 4\n  wake: : yes\n")
    for read in (lambda: config.load(path), lambda: config_check.check(path)):
        with pytest.raises(ConfigError) as err:
            read()
        assert err.value.message.startswith(f"{path}:3:")
        assert "\n" not in err.value.message and "<unicode string>" not in err.value.message


def test_the_control_planes_own_check_is_shown_by_up_with_its_hint_and_exit_code_2(
    initialized: repo_mod.Repo, cli: CliRunner
) -> None:
    """A FRACTA_* variable is not passed on to the control plane: the CLI's check passes, the
    control plane's fails, and `up` shows the control plane's own error and hint, exiting 2."""
    r = initialized
    r.config_path.write_text(r.config_path.read_text().replace("  max_agents: 4", "  max_agents: ${FRACTA_TEST_MAX}"))
    with cleanup(r):
        result = cli("up", env={"FRACTA_TEST_MAX": "3"})
        assert result.returncode == 2, result.stderr
    first, *rest = result.stderr.splitlines()
    assert first.startswith(f"error: {r.config_path}:")
    assert first.endswith(
        "agents.max_agents: environment variable FRACTA_TEST_MAX is not set "
        "(export it, or write ${FRACTA_TEST_MAX:-default})"
    )
    assert rest[-1].startswith("hint: fix fracta.yaml; every key, its type and default: docs/config.md")
    assert not r.control_path.exists()


def test_fracta_serve_answers_with_the_config_error_and_its_hint_at_once_and_starts_nothing(
    initialized: repo_mod.Repo,
) -> None:
    """The AI CLI's first request gets the error naming file, line and key, not a retry loop's timeout."""
    r = initialized
    line = write_bad(r, "mistyped nested key")
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}}
    with cleanup(r):
        served = subprocess.run(
            [sys.executable, "-m", "fracta", "serve"],
            cwd=r.root,
            input=json.dumps(initialize) + "\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert_nothing_started(r)
    assert served.returncode == 0, served.stderr
    [reply] = [json.loads(x) for x in served.stdout.splitlines()]
    text = reply["error"]["message"]
    assert reply["id"] == 1 and f"{r.config_path}:{line}: control_plane.prot: unknown key" in text, text
    assert "docs/config.md" in text and "reconnecting" not in served.stderr


# --- the schema, the defaults, the template and the docs agree ---------------------------------


def test_the_schemas_defaults_are_config_defaults() -> None:
    assert config_schema.Settings().model_dump(exclude_none=True) == config.DEFAULTS


def test_the_template_sets_every_default_and_nothing_else(tmp_path: Path) -> None:
    commented = ("auth", "mcp_servers")  # shown as examples (checked below), empty by default
    assert yaml.safe_load(config.TEMPLATE) == {k: v for k, v in config.DEFAULTS.items() if k not in commented}
    assert all(f"\n# {key}:\n" in config.TEMPLATE for key in commented)
    config_check.check(_written(tmp_path, config.TEMPLATE), env={})


def test_the_templates_commented_examples_are_valid(tmp_path: Path) -> None:
    """Uncommented, the template's examples (agent runtimes, auth profiles, MCP servers) pass the check."""
    lines = config.TEMPLATE.splitlines()
    start = lines.index("  # agent_runtimes:")
    runtimes_block = ["agents:"]
    for line in lines[start:]:  # the example runs until the comment's prose resumes
        if not re.match(r"  # (agent_runtimes:|  )", line):
            break
        runtimes_block.append("  " + line.removeprefix("  # "))
    rest = [line.removeprefix("# ") for line in lines[lines.index("# auth:") :] if line.startswith("# ")]
    rest = [line for line in rest if not line.startswith("Backend MCP")]
    text = "\n".join(runtimes_block + rest) + "\n"
    checked = config_check.check(_written(tmp_path, text), env={})
    assert set(checked.settings.auth.credentials.profiles) == {"bedrock", "opencode_bedrock", "from_file"}
    assert set(checked.settings.mcp_servers) == {"time"}
    assert dict(checked.settings.agents.agent_runtimes.items()).keys() == {"claude", "codex", "opencode"}


def test_every_runtime_option_in_the_schema_is_in_the_template_and_the_adapters() -> None:
    from fracta.runtimes import claude, codex, opencode, options

    assert list(config_schema.RUNTIMES) == runtimes.names()
    table = config_schema.RuntimeTable.model_fields
    for name, own in (("claude", claude.OWN), ("codex", codex.OWN), ("opencode", opencode.OWN)):
        fields = set(config_check.model_of(table[name].annotation).model_fields)  # type: ignore[union-attr]
        assert fields == options.COMMON | own, name
        for key in fields:
            assert re.search(rf"\b{key}\b", config.TEMPLATE), f"{name}.{key} is not in the template"


def test_docs_config_md_is_generated_from_the_schema() -> None:
    assert DOCS.read_text() == config_reference.markdown(), "run: python -m fracta.config_reference > docs/config.md"
    for key, field in config_reference.keys():  # noqa: SIM118 (a function of the module, not a dict)
        assert f"| `{key}` |" in DOCS.read_text()
        if "<name>" not in key and "[]" not in key and not key.startswith("agents.agent_runtimes"):
            if field.default is None and not field.is_required():  # unset by default (state.url): not in DEFAULTS
                section, _, name = key.rpartition(".")
                assert name not in _at(config.DEFAULTS, section), key  # type: ignore[operator]
            else:
                assert _at(config.DEFAULTS, key) == config_reference.default_of(field), key


def _at(data: object, key: str) -> object:
    for part in key.split("."):
        assert isinstance(data, dict) and part in data, key
        data = data[part]
    return data


def _written(folder: Path, text: str) -> Path:
    (folder / "fracta.yaml").write_text(text)
    return folder / "fracta.yaml"
