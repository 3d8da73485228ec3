"""fracta doctor: a healthy repo passes; a missing binary, a failing resolver, a missing variable or
an old git fail with what to fix; secrets never appear in its output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import CliRunner
from lifecycle_helpers import cleanup, use_free_port
from test_credentials import SECRET, auth, command_profile, configure

from fracta import repo as repo_mod

PY = sys.executable


@pytest.fixture
def fr(initialized: repo_mod.Repo, monkeypatch: pytest.MonkeyPatch) -> repo_mod.Repo:
    use_free_port(initialized)
    monkeypatch.setenv("PATH", f"{Path(PY).parent}{os.pathsep}{os.environ['PATH']}")
    return repo_mod.find(initialized.root, env={})


def doctor(cli: CliRunner) -> tuple[int, dict[str, Any], dict[str, dict[str, Any]]]:
    result = cli("doctor", "--json")
    assert result.stderr == "", result.stderr
    data = json.loads(result.stdout)
    return result.returncode, data, {c["name"]: c for c in data["checks"]}


def test_a_healthy_repo_with_a_running_control_plane_passes(fr: repo_mod.Repo, cli: CliRunner) -> None:
    with cleanup(fr):
        assert cli("up").returncode == 0
        code, data, checks = doctor(cli)
    assert code == 0 and data["ok"] is True and data["version"] == 1
    for check in data["checks"]:
        assert set(check) == {"area", "name", "status", "detail", "fix"}
        assert check["status"] in {"ok", "skip"}, check
    assert checks["git"]["status"] == "ok" and checks["git"]["detail"].startswith("git 2.")
    assert checks["fracta on PATH"]["status"] == "ok"
    assert checks["command"]["status"] == "ok"
    assert checks["control plane"]["status"] == "ok" and "answers with the token" in checks["control plane"]["detail"]
    assert checks["gateway"]["status"] == "ok" and "/mcp" in checks["gateway"]["detail"]
    text = cli("doctor")
    assert text.returncode == 0 and "everything fracta needs is in order" in text.stdout


def test_a_stopped_control_plane_is_a_warning_not_a_failure(fr: repo_mod.Repo, cli: CliRunner) -> None:
    code, data, checks = doctor(cli)
    assert code == 0 and data["ok"]
    assert checks["control plane"]["status"] == "warn" and checks["control plane"]["fix"] == "fracta up"


def test_a_missing_binary_fails_and_says_which_setting_to_fix(fr: repo_mod.Repo, cli: CliRunner) -> None:
    configure(fr, {"agents": {"agent_runtimes": {"codex": {"binary": "/nowhere/codex"}}}})
    code, data, checks = doctor(cli)
    assert code == 1 and data["ok"] is False
    codex = checks["codex"]
    assert codex["status"] == "fail" and "/nowhere/codex" in codex["detail"]
    assert "agents.agent_runtimes.codex.binary" in codex["fix"]
    text = cli("doctor")
    assert text.returncode == 1 and "FAIL  codex" in text.stdout and "fix: install it" in text.stdout


def test_resolvers_run_and_report_without_showing_a_secret(fr: repo_mod.Repo, cli: CliRunner, tmp_path: Path) -> None:
    profiles = {
        "good": {"resolver": command_profile(tmp_path, f'echo "{SECRET}"\n', "good.sh"), "bindings": {"env": "A"}},
        "bad": {
            "resolver": command_profile(tmp_path, f'echo "{SECRET}"\necho "denied {SECRET}" >&2\nexit 4\n', "bad.sh"),
            "bindings": {"env": "B"},
        },
    }
    configure(fr, auth("opencode", profiles, "good", env={"OPENAI_API_KEY": "${DOCTOR_UNSET_VAR}"}))
    result = cli("doctor", "--json")
    assert SECRET not in result.stdout + result.stderr
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert result.returncode == 1
    assert checks["profile good"]["status"] == "ok"
    assert f"gave a secret of {len(SECRET)} characters" in checks["profile good"]["detail"]
    bad = checks["profile bad"]
    assert bad["status"] == "fail" and "'bad'" in bad["detail"] and "exited with 4" in bad["detail"]
    assert "denied" in bad["detail"] and bad["fix"]
    runtime = checks["opencode credentials"]
    assert runtime["status"] == "fail" and "DOCTOR_UNSET_VAR" in runtime["detail"]
    text = cli("doctor")
    assert SECRET not in text.stdout + text.stderr


def test_an_old_git_and_an_uninitialized_repo_are_failures(repo_dir: Path, cli: CliRunner, tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "git").write_text("#!/bin/sh\necho 'git version 2.30.1'\n")
    (fake / "git").chmod(0o755)
    result = cli("doctor", "--json", env={"PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"})
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert result.returncode == 1
    assert checks["git"]["status"] == "fail" and "2.30.1 is too old" in checks["git"]["detail"]
    assert checks["initialized"]["status"] == "fail" and checks["initialized"]["fix"] == "fracta init"


def test_doctor_checks_the_running_control_planes_path_and_variables_and_says_so(
    fr: repo_mod.Repo, cli: CliRunner, tmp_path: Path
) -> None:
    """A control plane started from a stripped environment (as under Codex) lacks what the shell
    has: doctor looks where spawn looks, names the variables (never their values) and the PATH."""
    tools = tmp_path / "tools"  # a claude only the user's shell can find
    tools.mkdir()
    (tools / "claude").write_text("#!/bin/sh\necho '2.1.197 (Claude Code)'\n")
    (tools / "claude").chmod(0o755)
    session = tmp_path / "codex-session"  # on the control plane's PATH, gone once it started
    session.mkdir()
    configure(fr, {"agents": {"agent_runtimes": {"claude": {"env": {"DISABLE_AUTOUPDATER": "1"}}}}})
    shell = {"PATH": f"{tools}{os.pathsep}{os.environ['PATH']}", "ANTHROPIC_API_KEY": SECRET}
    stripped = {"HOME": os.environ["HOME"], "PATH": f"{session}{os.pathsep}{os.environ['PATH']}"}
    with cleanup(fr):
        started = subprocess.run([PY, "-m", "fracta", "up"], env=stripped, cwd=fr.root, capture_output=True, text=True)
        assert started.returncode == 0, started.stderr
        pid = json.loads(fr.control_path.read_text())["pid"]
        session.rmdir()
        result = cli("doctor", "--json", env=shell)
        data = json.loads(result.stdout)
        checks = {c["name"]: c for c in data["checks"]}
        assert SECRET not in result.stdout + result.stderr
        assert data["searched"]["of"] == "control_plane" and str(session) in data["searched"]["path"]
        assert f"the control plane's (pid {pid}) environment" in checks["spawn environment"]["detail"]
        lacking = checks["provider variables"]
        assert lacking["status"] == "warn" and "which this shell has" in lacking["detail"]
        assert "ANTHROPIC_API_KEY" in lacking["detail"].split("lacks ")[1]
        assert "env_vars" in lacking["fix"] and "fracta down" in lacking["fix"]
        assert checks["PATH"]["status"] == "warn" and str(session) in checks["PATH"]["detail"]
        claude = checks["claude"]
        assert claude["status"] == "fail" and f"on the control plane's (pid {pid}) PATH" in claude["detail"]
        assert "fracta down && fracta up" in claude["fix"]
        assert result.returncode == 1

    # No control plane: doctor checks this shell's environment, where claude and the key are.
    result = cli("doctor", "--json", env=shell)
    data = json.loads(result.stdout)
    checks = {c["name"]: c for c in data["checks"]}
    assert data["searched"]["of"] == "caller"
    assert "this shell's environment" in checks["spawn environment"]["detail"]
    assert "ANTHROPIC_API_KEY" in checks["spawn environment"]["detail"]
    assert (
        checks["claude"]["status"] == "ok"
        and f"{tools / 'claude'}, found on this shell's PATH" in checks["claude"]["detail"]
    )
    assert "provider variables" not in checks and "PATH" not in checks


def test_a_variable_fracta_yaml_names_later_is_flagged_until_codex_forwards_it(
    fr: repo_mod.Repo, cli: CliRunner
) -> None:
    _, _, checks = doctor(cli)
    assert checks["codex env_vars"]["status"] == "ok"  # as init wrote it
    configure(fr, {"agents": {"agent_runtimes": {"codex": {"env": {"GATEWAY_KEY": "${MY_GATEWAY_KEY}"}}}}})
    _, _, checks = doctor(cli)
    flagged = checks["codex env_vars"]
    assert flagged["status"] == "warn" and "does not forward MY_GATEWAY_KEY" in flagged["detail"]
    assert "env_vars" in flagged["fix"]
    config = fr.root / ".codex" / "config.toml"
    config.write_text(config.read_text().replace("env_vars = [", 'env_vars = [\n  "MY_GATEWAY_KEY",'))
    _, _, checks = doctor(cli)
    assert checks["codex env_vars"]["status"] == "ok"


def test_without_fracta_on_path_doctor_says_how_to_install_it_from_a_checkout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from fracta import doctor as doctor_mod

    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no fracta on it
    check = doctor_mod.check_fracta_on_path()
    assert check.status == "warn" and check.fix is not None
    assert "uv tool install /path/to/fracta" in check.fix and "pipx install /path/to/fracta" in check.fix
    assert "pipx install fracta" not in check.fix  # fracta is not published: that would fail
