"""fracta init wires `fracta serve` into Claude's, Codex's and OpenCode's project config files,
merging into existing files, refusing malformed ones untouched, and changing nothing the second time."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from conftest import CliRunner

from fracta import environment, wiring

NAMES = [".mcp.json", ".claude/settings.json", ".codex/config.toml", "opencode.json"]


def snapshot(root: Path) -> dict[str, bytes]:
    return {n: (root / n).read_bytes() for n in NAMES if (root / n).exists()}


def codex_fracta(forward: list[str]) -> dict[str, object]:
    """The [mcp_servers.fracta] table init writes, forwarding `forward`."""
    return {
        "command": "fracta",
        "args": ["serve"],
        "env_vars": sorted(forward),
        "required": True,
        "startup_timeout_sec": 60,
    }


def test_init_writes_all_three_files_that_run_fracta_serve(repo_dir: Path, cli: CliRunner) -> None:
    result = cli("init")
    assert result.returncode == 0, result.stderr
    assert json.loads((repo_dir / ".mcp.json").read_text()) == {
        "mcpServers": {"fracta": {"command": "fracta", "args": ["serve"]}}
    }
    codex = tomllib.loads((repo_dir / ".codex" / "config.toml").read_text())
    # Codex passes its MCP servers only a few variables: every provider variable is forwarded.
    assert codex == {"mcp_servers": {"fracta": codex_fracta(environment.known_names())}}
    assert {"ANTHROPIC_API_KEY", "OPENAI_API_KEY", "HTTPS_PROXY"} <= set(codex["mcp_servers"]["fracta"]["env_vars"])
    opencode = json.loads((repo_dir / "opencode.json").read_text())
    assert opencode["mcp"] == {"fracta": {"type": "local", "command": ["fracta", "serve"]}}
    claude = json.loads((repo_dir / ".claude" / "settings.json").read_text())
    assert claude == {"permissions": {"allow": ["mcp__fracta"]}, "enabledMcpjsonServers": ["fracta"]}
    for name in NAMES:
        assert f"{name}: created" in result.stdout, result.stdout


def test_existing_files_keep_their_servers_and_keys(repo_dir: Path, cli: CliRunner) -> None:
    mcp = {"mcpServers": {"github": {"command": "gh-mcp", "args": ["--ro"], "env": {"X": "1"}}}, "other": [1, 2]}
    (repo_dir / ".mcp.json").write_text(json.dumps(mcp))
    (repo_dir / ".codex").mkdir()
    codex_text = (
        '# my codex settings\nmodel = "o4"\n\n[mcp_servers.docs]\ncommand = "docs-mcp"\n'
        'args = ["x"]\n\n[profiles.fast]\nmodel = "o4-mini"  # no trailing newline'
    )
    (repo_dir / ".codex" / "config.toml").write_text(codex_text)
    (repo_dir / "opencode.json").write_text(json.dumps({"theme": "dark", "mcp": {"t": {"type": "remote", "url": "u"}}}))
    result = cli("init")
    assert result.returncode == 0, result.stderr
    merged = json.loads((repo_dir / ".mcp.json").read_text())
    assert merged["mcpServers"]["github"] == mcp["mcpServers"]["github"] and merged["other"] == [1, 2]
    assert merged["mcpServers"]["fracta"] == {"command": "fracta", "args": ["serve"]}
    text = (repo_dir / ".codex" / "config.toml").read_text()
    assert text.startswith(codex_text)  # appended: the user's comments and layout are kept
    codex = tomllib.loads(text)
    assert codex["model"] == "o4" and codex["profiles"] == {"fast": {"model": "o4-mini"}}
    assert codex["mcp_servers"] == {
        "docs": {"command": "docs-mcp", "args": ["x"]},
        "fracta": codex_fracta(environment.known_names()),
    }
    opencode = json.loads((repo_dir / "opencode.json").read_text())
    assert opencode["theme"] == "dark" and "$schema" not in opencode
    assert set(opencode["mcp"]) == {"t", "fracta"}
    for name in (".mcp.json", ".codex/config.toml", "opencode.json"):
        assert f"{name}: added" in result.stdout, result.stdout


def test_a_users_own_fracta_entry_is_left_alone(repo_dir: Path, cli: CliRunner) -> None:
    theirs = {"mcpServers": {"fracta": {"command": "op", "args": ["run", "--", "fracta", "serve"]}}}
    (repo_dir / ".mcp.json").write_text(json.dumps(theirs))
    (repo_dir / ".codex").mkdir()
    (repo_dir / ".codex" / "config.toml").write_text('[mcp_servers.fracta]\ncommand = "bin/fracta"\nargs = ["serve"]\n')
    before = snapshot(repo_dir)
    result = cli("init")
    assert result.returncode == 0, result.stderr
    after = snapshot(repo_dir)
    assert after[".mcp.json"] == before[".mcp.json"] and after[".codex/config.toml"] == before[".codex/config.toml"]
    assert ".mcp.json: kept your own 'fracta' entry" in result.stdout
    assert ".codex/config.toml: fracta MCP server already there" in result.stdout  # bin/fracta serve is ours


def test_malformed_files_are_refused_untouched_and_the_others_still_wired(repo_dir: Path, cli: CliRunner) -> None:
    (repo_dir / ".mcp.json").write_text('{"mcpServers": {"a": {}},}\n')  # trailing comma
    (repo_dir / ".codex").mkdir()
    (repo_dir / ".codex" / "config.toml").write_text("[mcp_servers\ncommand = 1\n")
    before = snapshot(repo_dir)
    result = cli("init")
    assert result.returncode == 2, result.stderr
    assert snapshot(repo_dir)[".mcp.json"] == before[".mcp.json"]
    assert snapshot(repo_dir)[".codex/config.toml"] == before[".codex/config.toml"]
    assert ".mcp.json: not changed" in result.stderr and "not valid JSON (line 1" in result.stderr
    assert ".codex/config.toml: not changed" in result.stderr and "not valid TOML" in result.stderr
    assert 'hint: fix it, or add this to it by hand:\n[mcp_servers.fracta]\ncommand = "fracta"' in result.stderr
    assert "opencode.json: created" in result.stdout
    assert (repo_dir / ".fracta" / "agents").is_dir()  # the rest of init is done


def test_a_toml_table_that_cannot_be_extended_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".codex").mkdir()
    inline = 'mcp_servers = { docs = { command = "d" } }\n'
    (tmp_path / ".codex" / "config.toml").write_text(inline)
    wired = {w.path.name: w for w in wiring.wire(tmp_path, ["OPENAI_API_KEY"])}
    error = wired["config.toml"].error
    assert error is not None and "cannot add [mcp_servers.fracta]" in error.message
    assert (tmp_path / ".codex" / "config.toml").read_text() == inline
    # Not JSON objects where objects belong: refused, untouched.
    (tmp_path / ".mcp.json").write_text('{"mcpServers": []}')
    (tmp_path / "opencode.json").write_text("[1]")
    again = {w.path.name: w for w in wiring.wire(tmp_path, ["OPENAI_API_KEY"])}
    assert again[".mcp.json"].error is not None and again["opencode.json"].error is not None
    assert (tmp_path / ".mcp.json").read_text() == '{"mcpServers": []}'


def test_running_init_twice_changes_nothing(repo_dir: Path, cli: CliRunner) -> None:
    (repo_dir / "opencode.json").write_text('{"theme": "dark"}')
    (repo_dir / "opencode.json").chmod(0o600)
    assert cli("init").returncode == 0
    first = snapshot(repo_dir)
    stamps = {n: (repo_dir / n).stat().st_mtime_ns for n in first}
    second = cli("init")
    assert second.returncode == 0, second.stderr
    assert snapshot(repo_dir) == first
    assert {n: (repo_dir / n).stat().st_mtime_ns for n in first} == stamps  # not even rewritten
    assert second.stdout.count("fracta MCP server already there") == 3
    assert ".claude/settings.json: fracta's tools, allowed, already there" in second.stdout
    assert (repo_dir / "opencode.json").stat().st_mode & 0o777 == 0o600  # the user's mode is kept


def test_no_wire_leaves_the_ai_cli_files_alone(repo_dir: Path, cli: CliRunner) -> None:
    result = cli("init", "--no-wire")
    assert result.returncode == 0, result.stderr
    assert snapshot(repo_dir) == {}


def test_claudes_project_settings_gain_fractas_tools_and_keep_the_users(repo_dir: Path, cli: CliRunner) -> None:
    theirs = {"permissions": {"allow": ["Bash(npm test:*)"], "deny": ["Read(.env)"]}, "model": "opus"}
    (repo_dir / ".claude").mkdir()
    (repo_dir / ".claude" / "settings.json").write_text(json.dumps(theirs))
    result = cli("init")
    assert result.returncode == 0, result.stderr
    merged = json.loads((repo_dir / ".claude" / "settings.json").read_text())
    assert merged["permissions"] == {"allow": ["Bash(npm test:*)", "mcp__fracta"], "deny": ["Read(.env)"]}
    assert merged["model"] == "opus" and merged["enabledMcpjsonServers"] == ["fracta"]
    assert ".claude/settings.json: added fracta's tools, allowed, for claude" in result.stdout
    (repo_dir / ".claude" / "settings.json").write_text('{"permissions": {"allow": "everything"}}')
    refused = cli("init")
    assert ".claude/settings.json: not changed: allow in" in refused.stderr
    assert (repo_dir / ".claude" / "settings.json").read_text() == '{"permissions": {"allow": "everything"}}'


def test_codex_forwards_the_variables_fracta_yaml_names_and_an_entry_that_forwards_less_is_reported(
    repo_dir: Path, cli: CliRunner
) -> None:
    (repo_dir / "fracta.yaml").write_text(
        "agents:\n  agent_runtimes:\n    codex:\n      env:\n        MY_GATEWAY_KEY: ${MY_GATEWAY_KEY}\n"
        "        REGION: ${MY_REGION:-eu}\n"
    )
    assert cli("init").returncode == 0
    codex = tomllib.loads((repo_dir / ".codex" / "config.toml").read_text())
    forwarded = codex["mcp_servers"]["fracta"]["env_vars"]
    assert {"MY_GATEWAY_KEY", "MY_REGION", "OPENAI_API_KEY"} <= set(forwarded)
    assert forwarded == sorted({*environment.known_names(), "MY_GATEWAY_KEY", "MY_REGION"})

    # An entry written before env_vars existed is the user's to update: left alone, and said so.
    old = '[mcp_servers.fracta]\ncommand = "fracta"\nargs = ["serve"]\n'
    (repo_dir / ".codex" / "config.toml").write_text(old)
    again = cli("init")
    assert again.returncode == 0, again.stderr
    assert (repo_dir / ".codex" / "config.toml").read_text() == old
    assert ".codex/config.toml: fracta MCP server already there, but its env_vars lacks variables" in again.stdout
