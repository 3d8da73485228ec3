"""Secrets resolved for agents never leak: run agents with every kind of credential (and resolvers
that fail, printing their secret as they go) through the lifecycle, then grep every file under
.fracta/ but the 0600 launch and credential files, and every output a user or agent can ask for."""

from __future__ import annotations

import http.client
import json
import os
import stat
import sys
from pathlib import Path

import pytest
from conftest import CliRunner, git
from lifecycle_helpers import cleanup, spawn, use_free_port, wait_status
from test_credentials import DUMP, auth, command_profile, configure

from fracta import repo as repo_mod
from fracta.control import daemon

PY = sys.executable
SECRETS = {
    "env": "sEcReT-from-env-5b8e1f0c9a7d",
    "command": "sEcReT-from-command-3c6a2e9f1b4d",
    "file": "sEcReT-from-file-8d2f7a1e6c0b",
    "runtime_env": "sEcReT-runtime-env-1a9c4e7b2f6d",
    "failing": "sEcReT-failing-resolver-7e3b9d1c5a2f",
    "late": "sEcReT-fails-at-launch-4f1a8c2e9b7d",
}
PRIVATE = {"launch.json"}  # and everything under agents/<name>/credentials/


@pytest.fixture
def fr(initialized: repo_mod.Repo, monkeypatch: pytest.MonkeyPatch) -> repo_mod.Repo:
    use_free_port(initialized)
    monkeypatch.setenv("PATH", f"{Path(PY).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("LEAK_TEST_TOKEN", SECRETS["env"])
    monkeypatch.setenv("LEAK_TEST_API_KEY", SECRETS["runtime_env"])
    return repo_mod.find(initialized.root, env={})


def leaks(text: str) -> list[str]:
    found = [kind for kind, secret in SECRETS.items() if secret in text]
    # Also a part of one (a truncated echo), and the bare distinctive marker.
    return found + (["marker"] if "sEcReT" in text else [])


def scan_state(r: repo_mod.Repo) -> tuple[dict[str, list[str]], list[Path], set[str]]:
    """Leaks per file under .fracta/ (private files skipped), the private files, and those scanned."""
    found: dict[str, list[str]] = {}
    private: list[Path] = []
    scanned: set[str] = set()
    for folder, _dirs, files in os.walk(r.state):
        for name in files:
            path = Path(folder) / name
            if name in PRIVATE or path.parent.name == "credentials":
                private.append(path)
                continue
            scanned.add(str(path.relative_to(r.state)))
            hits = leaks(path.read_bytes().decode("utf-8", errors="replace"))
            if hits:
                found[str(path.relative_to(r.state))] = hits
    return found, private, scanned


def api(r: repo_mod.Repo, path: str) -> str:
    info = daemon.read_info(r)
    assert info is not None
    host, port = info.url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", path, headers={"Authorization": f"Bearer {r.token_path.read_text().strip()}"})
    response = conn.getresponse()
    body = response.read().decode()
    conn.close()
    assert response.status == 200, (path, response.status, body)
    return body


def test_no_secret_reaches_any_file_or_output_but_the_private_ones(
    fr: repo_mod.Repo, cli: CliRunner, tmp_path: Path
) -> None:
    (tmp_path / "token-file").write_text(SECRETS["file"] + "\n")
    profiles = {
        "from_env": {"resolver": {"env": "LEAK_TEST_TOKEN"}, "bindings": {"env": "AWS_BEARER_TOKEN_BEDROCK"}},
        "from_command": {
            "resolver": command_profile(tmp_path, f'echo "{SECRETS["command"]}"\n', "good.sh"),
            "bindings": {"env": "ANTHROPIC_AUTH_TOKEN"},
        },
        "from_file": {
            "resolver": {"file": str(tmp_path / "token-file")},
            "bindings": {"file": "llm-token", "path_env": "LLM_TOKEN_FILE"},
        },
    }
    runtime_env = {"OPENAI_API_KEY": "${LEAK_TEST_API_KEY}", "AWS_REGION": "us-east-1"}
    r = configure(fr, auth("command", profiles, list(profiles), env=runtime_env))
    dump = tmp_path / "dump.py"
    dump.write_text(DUMP)
    names = ["AWS_BEARER_TOKEN_BEDROCK", "ANTHROPIC_AUTH_TOKEN", "LLM_TOKEN_FILE", "OPENAI_API_KEY"]
    job = tmp_path / "job.sh"
    job.write_text(
        "set -e\n"
        'fracta intent "$FRACTA_AGENT" "working with credentials"\n'
        f'{PY} {dump} {tmp_path}/"$FRACTA_AGENT".json {" ".join(names)}\n'
        'echo "an ordinary line of output"; echo "and one on stderr" >&2\n'
        'echo "$FRACTA_AGENT" > "$FRACTA_AGENT.txt" && git add . && git commit -q -m "$FRACTA_AGENT works"\n'
        'fracta say chessmaster "done" --from "$FRACTA_AGENT"\n'
    )
    outputs: list[str] = []
    with cleanup(r):
        for name in ("alpha", "beta"):
            spawn(cli, name, "sh", str(job))
        for name in ("alpha", "beta"):
            wait_status(r, name, "done")
        seen = json.loads((tmp_path / "alpha.json").read_text())
        # The secrets really reached the agent (the scan below would otherwise prove nothing).
        assert seen["env"]["AWS_BEARER_TOKEN_BEDROCK"] == SECRETS["env"]
        assert seen["env"]["ANTHROPIC_AUTH_TOKEN"] == SECRETS["command"]
        assert seen["files"]["LLM_TOKEN_FILE"] == SECRETS["file"] + "\n"
        assert seen["env"]["OPENAI_API_KEY"] == SECRETS["runtime_env"]
        assert cli("merge", "alpha").returncode == 0
        outputs += _read_everything(cli)
        outputs += [api(r, p) for p in ("/v1/agents", "/v1/events", "/v1/progress", "/v1/agents/beta/peek")]

        # Resolvers that fail after printing their secret (on stdout and stderr): at spawn ...
        daemon.down(r)
        failing = f'echo "{SECRETS["failing"]}"\necho "no: {SECRETS["failing"]}" >&2\nexit 1\n'
        r = configure(
            r,
            auth(
                "command",
                {"broken": {"resolver": command_profile(tmp_path, failing, "bad.sh"), "bindings": {"env": "T"}}},
                "broken",
                env={},
            ),
        )
        refused = cli("spawn", "gamma", "--json", "--", "true")
        assert refused.returncode != 0 and "credential profile 'broken'" in refused.stderr
        outputs.append(refused.stdout + refused.stderr)
        # ... and right before launch (it worked for the spawn-time check).
        daemon.down(r)
        count = tmp_path / "count"
        late = (
            f'echo x >> {count}\n[ "$(wc -l < {count})" -le 1 ] || '
            f'{{ echo "{SECRETS["late"]}"; echo "expired {SECRETS["late"]}" >&2; exit 2; }}\necho "{SECRETS["late"]}"\n'
        )
        r = configure(
            r,
            auth(
                "command",
                {"flaky": {"resolver": command_profile(tmp_path, late, "late.sh"), "bindings": {"env": "T"}}},
                "flaky",
            ),
        )
        spawn(cli, "delta", "true")
        wait_status(r, "delta", "failed")
        outputs += _read_everything(cli)
        outputs += [cli("peek", "delta", "--json").stdout, api(r, "/v1/agents/delta"), api(r, "/v1/events")]
        # Everything was recorded while the control plane ran: its logs are scanned too.
    for text in outputs:
        assert leaks(text) == [], text
    found, private, scanned = scan_state(r)
    assert found == {}
    expected = {"events.jsonl", "progress.md", "logs/control.log", "agents/alpha/agent.json"}
    expected |= {"agents/alpha/output.jsonl", "agents/delta/agent.json"}
    assert expected <= scanned, sorted(scanned)
    assert {p.name for p in private} >= {"launch.json", "llm-token"}
    for path in private:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert leaks(git(r.root, "log", "--all", "-p")) == []


def _read_everything(cli: CliRunner) -> list[str]:
    """What a user (or an agent's shell) can ask fracta for, stdout and stderr together."""
    reads = [
        ("list", "--json"),
        ("list",),
        ("progress",),
        ("peek", "alpha", "--json"),
        ("peek", "beta"),
        ("inbox", "chessmaster", "--all", "--json"),
        ("status", "--json"),
        ("doctor", "--json"),
    ]
    return [(done := cli(*args)).stdout + done.stderr for args in reads]
