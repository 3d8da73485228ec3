"""Credentials: each resolver and binding delivers the secret the agent's process sees; a broken
resolver stops the spawn with a clear error that names the profile and never the secret."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from ai_clis import CLAUDE_OFFLINE, CODEX_KEY_VAR, OPENCODE_OFFLINE, closed_port, enter_isolated_env, require_cli
from conftest import CliRunner, git
from helpers.expect import clean_error
from lifecycle_helpers import cleanup, spawn, use_free_port, wait_status
from scripted_model import ScriptedModel, say

from fracta import agents, credentials
from fracta import repo as repo_mod
from fracta.errors import ConfigError

PY = sys.executable
SECRET = "sk-test-7f3a9c1e5b2d4068a1b3c5d7e9f20468"


def configure(r: repo_mod.Repo, data: dict[str, Any]) -> repo_mod.Repo:
    """Merge `data` into fracta.yaml; returns a fresh Repo (its config is read once)."""
    current = yaml.safe_load(r.config_path.read_text()) or {}

    def merge(base: dict[str, Any], over: dict[str, Any]) -> None:
        for key, value in over.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                merge(base[key], value)
            else:
                base[key] = value

    merge(current, data)
    r.config_path.write_text(yaml.safe_dump(current, sort_keys=False))
    return repo_mod.find(r.root, env={})


def auth(runtime: str, profiles: dict[str, Any], use: str | list[str] | None = None, **extra: Any) -> dict[str, Any]:
    options: dict[str, Any] = dict(extra)
    if use is not None:
        options["auth_profile"] = use
    return {"auth": {"credentials": {"profiles": profiles}}, "agents": {"agent_runtimes": {runtime: options}}}


def command_profile(tmp: Path, body: str, name: str = "resolver.sh", **resolver: Any) -> dict[str, Any]:
    path = tmp / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return {"command": [str(path)], **resolver}


@pytest.fixture
def fr(initialized: repo_mod.Repo, monkeypatch: pytest.MonkeyPatch) -> repo_mod.Repo:
    use_free_port(initialized)
    monkeypatch.setenv("PATH", f"{Path(PY).parent}{os.pathsep}{os.environ['PATH']}")
    return repo_mod.find(initialized.root, env={})


# --- resolving, without a control plane -------------------------------------------------------


def test_nothing_configured_gives_an_empty_plan(fr: repo_mod.Repo, tmp_path: Path) -> None:
    plan = credentials.resolve(fr, "claude", tmp_path)
    assert plan.empty and plan.secrets == [] and plan.claude_api_key_helper is None


def test_each_resolver_kind_feeds_each_binding(
    fr: repo_mod.Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOST_TOKEN", "from-the-env-0123456789")
    (fr.root / "token.txt").write_text("from-a-file-0123456789\n")
    profiles = {
        "by_command": {"resolver": command_profile(tmp_path, "echo from-a-command-0123"), "bindings": {"env": "A"}},
        "by_env": {"resolver": {"env": "HOST_TOKEN"}, "bindings": [{"env": "B"}, {"env": "B2"}]},
        "by_file": {"resolver": {"file": "token.txt"}, "bindings": [{"file": "tok", "path_env": "C_FILE"}]},
    }
    r = configure(fr, auth("command", profiles, ["by_command", "by_env", "by_file"]))
    agent_dir = r.agent_dir("x")
    plan = credentials.resolve(r, "command", agent_dir)
    token_file = agent_dir / credentials.FILES_DIR / "tok"
    assert plan.env == {
        "A": "from-a-command-0123",
        "B": "from-the-env-0123456789",
        "B2": "from-the-env-0123456789",
        "C_FILE": str(token_file),
    }
    assert plan.files == {token_file: "from-a-file-0123456789\n"}
    assert sorted(plan.secrets) == ["from-a-command-0123", "from-a-file-0123456789", "from-the-env-0123456789"]
    assert plan.profiles == ("by_command", "by_env", "by_file")
    assert not agent_dir.exists()  # resolving writes nothing
    assert "0123" not in repr(plan)


def test_claude_api_key_helper_is_a_command_that_prints_the_token_and_no_file_holds_it(
    fr: repo_mod.Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = tmp_path / "runs"
    body = f'echo run >> {counter}\necho "{SECRET}"\n'
    r = configure(
        fr,
        auth(
            "claude",
            {"bedrock": {"resolver": command_profile(tmp_path, body), "bindings": [{"claude_api_key_helper": True}]}},
            "bedrock",
        ),
    )
    plan = credentials.resolve(r, "claude", r.agent_dir("x"))
    assert plan.claude_api_key_helper is not None and SECRET not in plan.claude_api_key_helper
    assert plan.env == {} and plan.files == {} and plan.secrets == [SECRET]
    # Claude runs apiKeyHelper with /bin/sh, from the agent's workspace and environment.
    monkeypatch.chdir(tmp_path)
    out = subprocess.run(["/bin/sh", "-c", plan.claude_api_key_helper], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == SECRET
    assert counter.read_text().count("run") == 2  # once at resolve, once for the helper: fresh each time


def test_api_key_helper_reads_env_and_file_resolvers_too(
    fr: repo_mod.Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BEDROCK_TOKEN", SECRET)
    (tmp_path / "tok").write_text(SECRET + "2\n")
    profiles = {
        "e": {"resolver": {"env": "BEDROCK_TOKEN"}, "bindings": {"claude_api_key_helper": True}},
        "f": {"resolver": {"file": str(tmp_path / "tok")}, "bindings": {"claude_api_key_helper": True}},
    }
    for name, expected in (("e", SECRET), ("f", SECRET + "2")):
        r = configure(fr, auth("claude", profiles, name))
        helper = credentials.resolve(r, "claude", r.agent_dir("x")).claude_api_key_helper
        assert helper is not None
        out = subprocess.run(["/bin/sh", "-c", helper], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == expected


def test_runtime_env_is_interpolated_and_a_missing_variable_is_named(
    fr: repo_mod.Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.delenv("AWS_REGION", raising=False)
    env = {"OPENAI_API_KEY": "${OPENAI_API_KEY}", "AWS_REGION": "${AWS_REGION:-us-east-1}", "FLAG": 1}
    r = configure(fr, {"agents": {"agent_runtimes": {"codex": {"env": env}}}})
    plan = credentials.resolve(r, "codex", tmp_path)
    assert plan.env == {"OPENAI_API_KEY": SECRET, "AWS_REGION": "us-east-1", "FLAG": "1"}
    assert plan.secrets == [SECRET]  # the region is not a secret; the key is
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(credentials.CredentialError) as caught:
        credentials.resolve(r, "codex", tmp_path)
    assert "agents.agent_runtimes.codex.env.OPENAI_API_KEY" in caught.value.message
    assert "OPENAI_API_KEY" in caught.value.hint


def test_runtime_env_names_the_agent_where_it_says_agent(fr: repo_mod.Repo, tmp_path: Path) -> None:
    env = {"ANTHROPIC_BASE_URL": "http://127.0.0.1:9/a/{{agent}}", "PLAIN": "{agent}"}
    r = configure(fr, {"agents": {"agent_runtimes": {"claude": {"env": env}}}})
    plan = credentials.resolve(r, "claude", tmp_path / "agents" / "ada")
    assert plan.env == {"ANTHROPIC_BASE_URL": "http://127.0.0.1:9/a/ada", "PLAIN": "{agent}"}
    assert plan.secrets == []


@pytest.mark.parametrize(
    ("resolver", "fragments"),
    [
        ({"env": "NO_SUCH_TOKEN_VAR"}, ["'broken'", "NO_SUCH_TOKEN_VAR", "not set"]),
        ({"file": "missing/token"}, ["'broken'", "missing/token", "does not exist"]),
        ({"command": ["no-such-token-helper-xyz"]}, ["'broken'", "no-such-token-helper-xyz"]),
        ("exit", ["'broken'", "resolver.sh", "exited with 3", "session expired"]),
        ("empty", ["'broken'", "printed nothing"]),
        ("slow", ["'broken'", "did not finish within 0.5s"]),
        ("lines", ["'broken'", "several lines"]),
    ],
)
def test_a_failing_resolver_names_the_profile_and_never_the_secret(
    fr: repo_mod.Repo, tmp_path: Path, resolver: Any, fragments: list[str]
) -> None:
    bodies = {
        # It prints the token, then fails and echoes it on stderr: none of it may be shown.
        "exit": f'echo "{SECRET}"\necho "session expired for {SECRET}" >&2\nexit 3\n',
        "empty": "exit 0\n",
        "slow": "sleep 5\n",
        "lines": f'echo "{SECRET}"\necho second\n',
    }
    if isinstance(resolver, str):
        resolver = command_profile(tmp_path, bodies[resolver], timeout=0.5 if resolver == "slow" else 30)
    r = configure(fr, auth("command", {"broken": {"resolver": resolver, "bindings": {"env": "T"}}}, "broken"))
    with pytest.raises(credentials.CredentialError) as caught:
        credentials.resolve(r, "command", tmp_path)
    text = f"{caught.value.message}\n{caught.value.hint}"
    for fragment in fragments:
        assert fragment in text, (fragment, text)
    assert SECRET not in text and SECRET[8:24] not in text


def test_config_mistakes_are_config_errors(fr: repo_mod.Repo, tmp_path: Path) -> None:
    good = {"resolver": {"env": "X"}, "bindings": {"env": "Y"}}
    cases: list[tuple[dict[str, Any], str]] = [
        (auth("command", {"p": good}, "nope"), "'nope', which is not defined"),
        (
            auth("codex", {"p": {"resolver": {"env": "X"}, "bindings": {"claude_api_key_helper": True}}}, "p"),
            "not Claude",
        ),
        (
            auth("command", {"p": {"resolver": {"env": "X", "file": "f"}, "bindings": {"env": "Y"}}}, "p"),
            "exactly one of command, env or file",
        ),
        (auth("command", {"p": {"resolver": {"env": "X"}}}, "p"), "bindings must list"),
        (
            auth("command", {"p": {"resolver": {"env": "X"}, "bindings": {"file": "../escape"}}}, "p"),
            "plain relative name",
        ),
        (auth("command", {"p": {"resolver": {"env": "X"}, "bindings": {"env": "FRACTA_TOKEN"}}}, "p"), "fracta's own"),
        ({"agents": {"agent_runtimes": {"command": {"env": {"FRACTA_AGENT": "me"}}}}}, "fracta's own"),
    ]
    for data, fragment in cases:
        configure(fr, {"auth": {"credentials": {"profiles": None}}, "agents": {"agent_runtimes": None}})
        r = configure(fr, data)
        runtime = next(iter(data["agents"]["agent_runtimes"]))
        with pytest.raises(ConfigError) as caught:
            credentials.resolve(r, runtime, tmp_path)
        assert fragment in caught.value.message + caught.value.hint, (fragment, caught.value.message)


# --- the agent's process sees the values, end to end ------------------------------------------


DUMP = """\
import json, os, sys
names = sys.argv[2:]
env = {n: os.environ.get(n) for n in names}
files = {n: open(os.environ[n]).read() for n in names if n.endswith("_FILE") and n in os.environ}
modes = {n: oct(os.stat(os.environ[n]).st_mode & 0o777) for n in files}
json.dump({"env": env, "files": files, "modes": modes}, open(sys.argv[1], "w"))
"""


def test_a_command_agent_receives_env_file_and_runtime_env_bindings(
    fr: repo_mod.Repo, cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOST_OPENAI_KEY", SECRET + "-env")
    (tmp_path / "file-token").write_text(SECRET + "-file\n")
    profiles = {
        "cmd": {
            "resolver": command_profile(tmp_path, f'echo "{SECRET}-cmd"\n'),
            "bindings": {"env": "AWS_BEARER_TOKEN_BEDROCK"},
        },
        "fromfile": {
            "resolver": {"file": str(tmp_path / "file-token")},
            "bindings": {"file": "llm", "path_env": "LLM_FILE"},
        },
    }
    env = {"OPENAI_API_KEY": "${HOST_OPENAI_KEY}", "AWS_REGION": "eu-west-3"}
    r = configure(fr, auth("command", profiles, ["cmd", "fromfile"], env=env))
    dump, out = tmp_path / "dump.py", tmp_path / "seen.json"
    dump.write_text(DUMP)
    names = ["AWS_BEARER_TOKEN_BEDROCK", "OPENAI_API_KEY", "AWS_REGION", "LLM_FILE", "FRACTA_AGENT", "HOST_OPENAI_KEY"]
    with cleanup(r):
        spawn(cli, "creds", PY, str(dump), str(out), *names)
        wait_status(r, "creds", "done")
    seen = json.loads(out.read_text())
    assert seen["env"]["AWS_BEARER_TOKEN_BEDROCK"] == SECRET + "-cmd"
    assert seen["env"]["OPENAI_API_KEY"] == SECRET + "-env"
    assert seen["env"]["AWS_REGION"] == "eu-west-3"
    assert seen["env"]["FRACTA_AGENT"] == "creds"
    assert seen["env"]["HOST_OPENAI_KEY"] == SECRET + "-env"  # the control plane's environment passes through
    credential_file = r.agent_dir("creds") / "credentials" / "llm"
    assert seen["env"]["LLM_FILE"] == str(credential_file)
    assert seen["files"]["LLM_FILE"] == SECRET + "-file\n"
    assert seen["modes"]["LLM_FILE"] == "0o600"
    assert stat.S_IMODE((r.agent_dir("creds") / "launch.json").stat().st_mode) == 0o600


def test_without_a_profile_the_provider_variables_of_the_control_plane_pass_through(
    fr: repo_mod.Repo, cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET + "-anthropic")
    monkeypatch.setenv("HOME", str(tmp_path / "users-home"))
    dump, out = tmp_path / "dump.py", tmp_path / "seen.json"
    dump.write_text(DUMP)
    with cleanup(fr):
        spawn(cli, "plain", PY, str(dump), str(out), "ANTHROPIC_API_KEY", "HOME")
        wait_status(fr, "plain", "done")
    seen = json.loads(out.read_text())
    assert seen["env"] == {"ANTHROPIC_API_KEY": SECRET + "-anthropic", "HOME": str(tmp_path / "users-home")}


def test_a_failing_resolver_stops_the_spawn_with_nothing_created(
    fr: repo_mod.Repo, cli: CliRunner, tmp_path: Path
) -> None:
    marker = tmp_path / "agent-ran"
    body = f'echo "{SECRET}"\necho "token service said no" >&2\nexit 1\n'
    r = configure(
        fr, auth("command", {"corp": {"resolver": command_profile(tmp_path, body), "bindings": {"env": "T"}}}, "corp")
    )
    with cleanup(r):
        assert cli("up").returncode == 0
        failed = cli("spawn", "nocred", "--", "touch", str(marker))
        clean_error(failed, 1, "credential profile 'corp'", "exited with 1", "token service said no")
        assert SECRET not in failed.stderr + failed.stdout
        assert not r.agent_dir("nocred").exists()
        assert not (r.worktrees_dir / "nocred").exists()
        assert git(r.root, "branch", "--list", "feature/nocred") == ""
        assert not [m for m in os.listdir(r.missions_dir) if "nocred" in m]
        assert not marker.exists()


def test_a_resolver_that_breaks_after_spawn_fails_the_agent_before_its_process_starts(
    fr: repo_mod.Repo, cli: CliRunner, tmp_path: Path
) -> None:
    marker, count = tmp_path / "agent-ran", tmp_path / "count"
    # Works the first time (the spawn-time check), fails the second (right before launch).
    body = f'echo x >> {count}\n[ "$(wc -l < {count})" -le 1 ] || {{ echo "expired" >&2; exit 2; }}\necho "{SECRET}"\n'
    r = configure(
        fr, auth("command", {"flaky": {"resolver": command_profile(tmp_path, body), "bindings": {"env": "T"}}}, "flaky")
    )
    with cleanup(r):
        spawn(cli, "later", "touch", str(marker))
        wait_status(r, "later", "failed")
        agent = agents.load(r, "later")
        assert (
            agent.error is not None and "credential profile 'flaky'" in agent.error and "exited with 2" in agent.error
        )
        assert agent.pid is None and not marker.exists()
        assert not (r.agent_dir("later") / "launch.json").exists()
        listed = cli("list", "--json")
        assert "flaky" in listed.stdout and SECRET not in listed.stdout


# --- the real AI CLIs: what reached the (scripted) model --------------------------------------


@pytest.fixture
def llm() -> Iterator[ScriptedModel]:
    with ScriptedModel() as model:
        yield model


@pytest.fixture
def isolated(fr: repo_mod.Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> repo_mod.Repo:
    """No host provider variables or login: whatever reaches the model came from fracta.yaml."""
    enter_isolated_env(tmp_path / "env", monkeypatch, Path(PY).parent)
    return fr


def cli_setup(
    runtime: str, model: ScriptedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, Any], str]:
    """fracta.yaml for the seed's case of `runtime` against the scripted model, and its secret."""
    base = f"{model.url}/a/{runtime}-agent"
    if runtime == "claude":  # Claude on Bedrock-like auth: a token command behind apiKeyHelper
        secret = SECRET + "-claude"
        resolver = command_profile(tmp_path, f'echo "{secret}"\n', "bedrock-auth-helper")
        options = {
            "binary": str(require_cli("claude")),
            "env": {**CLAUDE_OFFLINE, "AWS_REGION": "us-east-1"},
            "settings": {"env": {"ANTHROPIC_BASE_URL": base}},
        }
        profiles = {"bedrock": {"resolver": resolver, "bindings": [{"claude_api_key_helper": True}]}}
        return auth("claude", profiles, "bedrock", **options), secret
    if runtime == "codex":  # Codex with its key from the host environment, through agent_runtimes.codex.env
        secret = SECRET + "-codex"
        monkeypatch.setenv("HOST_OPENAI_API_KEY", secret)  # the control plane inherits it
        provider = {"name": "fake", "base_url": base + "/v1", "env_key": CODEX_KEY_VAR, "wire_api": "responses"}
        options = {
            "binary": str(require_cli("codex")),
            "model": "fake-model",
            "env": {CODEX_KEY_VAR: "${HOST_OPENAI_API_KEY}"},
            "config": {"model_provider": "fake", "model_providers": {"fake": provider}},
        }
        return {"agents": {"agent_runtimes": {"codex": options}}}, secret
    # OpenCode on Bedrock-like auth: a bearer token made at spawn, in AWS_BEARER_TOKEN_BEDROCK
    secret = SECRET + "-opencode"
    resolver = command_profile(tmp_path, f'echo "{secret}"\n', "bedrock-bearer")
    fake = {
        "npm": "@ai-sdk/openai-compatible",
        "options": {"baseURL": base + "/v1", "apiKey": "{env:AWS_BEARER_TOKEN_BEDROCK}"},
        "models": {"fake-model": {"tool_call": True, "limit": {"context": 100000, "output": 4096}}},
    }
    options = {
        "binary": str(require_cli("opencode")),
        "model": "fake/fake-model",
        "env": {**OPENCODE_OFFLINE, "npm_config_registry": f"http://127.0.0.1:{closed_port()}/"},
        "config": {"small_model": "fake/fake-model", "provider": {"fake": fake}},
    }
    profiles = {"opencode_bedrock": {"resolver": resolver, "bindings": [{"env": "AWS_BEARER_TOKEN_BEDROCK"}]}}
    return auth("opencode", profiles, "opencode_bedrock", **options), secret


@pytest.mark.timeout(240)
@pytest.mark.parametrize("runtime", ["claude", "codex", "opencode"])
def test_the_real_cli_sends_the_resolved_credential_to_the_model(
    isolated: repo_mod.Repo,
    llm: ScriptedModel,
    cli: CliRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    runtime: str,
) -> None:
    data, secret = cli_setup(runtime, llm, tmp_path, monkeypatch)
    r = configure(isolated, data)
    name = f"{runtime}-agent"
    model = llm.agent(name, [say("FINAL")])
    with cleanup(r):
        result = cli("spawn", name, "--runtime", runtime, "--prompt", "Say FINAL.")
        assert result.returncode == 0, result.stderr
        wait_status(r, name, "idle", "done", "failed")
        output = r.agent_dir(name) / "output.jsonl"
        why = f"{agents.load(r, name)}\n{output.read_text()[-2000:] if output.exists() else ''}"
        assert agents.load(r, name).status == agents.Status.IDLE, why
        assert model.credentials() == {secret}, why
    if runtime == "claude":  # the key came through apiKeyHelper: not even launch.json holds it
        settings = json.loads((r.agent_dir(name) / "claude-settings.json").read_text())
        assert settings["apiKeyHelper"] and secret not in settings["apiKeyHelper"]
        assert secret not in (r.agent_dir(name) / "launch.json").read_text()
    # Nothing under .fracta/ holds the secret but the 0600 launch.json (the CLIs' own files included).
    held = [
        str(p.relative_to(r.state))
        for p in r.state.rglob("*")
        if p.is_file() and p.name != "launch.json" and secret in p.read_text(errors="replace")
    ]
    assert held == []
