"""Free ports by default: two repositories' control planes run at once on an untouched fracta.yaml,
and everything that talks to one finds it through the URLs recorded in .fracta/control.json."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from conftest import CliRunner, git
from lifecycle_helpers import cleanup, output_lines, wait_for, wait_status

from fracta import config, identity
from fracta import repo as repo_mod
from fracta.control import client, daemon


def make_initialized(root: Path, cli: CliRunner) -> repo_mod.Repo:
    root.mkdir()
    git(root, "init", "-q")
    (root / "README.md").write_text(f"# {root.name}\n")
    git(root, "add", "README.md")
    git(root, "commit", "-q", "-m", "initial commit")
    result = cli("init", cwd=root)
    assert result.returncode == 0, result.stderr
    return repo_mod.find(root, env={})


def test_the_defaults_are_free_ports() -> None:
    assert config.DEFAULTS["control_plane"]["port"] == 0
    assert config.DEFAULTS["gateway"]["port"] == 0


def test_two_repositories_control_planes_run_at_once_on_the_default_config(tmp_path: Path, cli: CliRunner) -> None:
    first = make_initialized(tmp_path / "first", cli)
    second = make_initialized(tmp_path / "second", cli)
    for r in (first, second):
        assert r.config_path.read_text() == config.TEMPLATE  # untouched: the defaults as init wrote them
    with cleanup(first), cleanup(second):
        for r in (first, second):
            result = cli("up", cwd=r.root)
            assert result.returncode == 0, result.stderr
        infos = [daemon.read_info(r) for r in (first, second)]
        assert all(info is not None for info in infos)
        urls = {info.url for info in infos if info} | {info.gateway_url for info in infos if info}
        assert len(urls) == 4  # two REST APIs, two gateways, each on a port of its own

        for r in (first, second):
            info = daemon.read_info(r)
            assert info is not None
            assert client.call(r, info, "GET", "/v1/health")["ok"] is True  # each answers with its own token
            spawned = cli("spawn", "task", "--", sys.executable, "-c", PRINT_URLS, cwd=r.root)
            assert spawned.returncode == 0, spawned.stderr
            wait_status(r, "task", "done")
            # The agent found its own control plane and gateway through what control.json records.
            printed = wait_for("the agent's output", lambda r=r: output_lines(r, "task"))
            assert json.loads(printed[0]) == {"url": info.url, "gateway": info.gateway_url}  # type: ignore[index]

        listed = [cli("list", "--json", cwd=r.root) for r in (first, second)]
        assert [json.loads(x.stdout)["agents"][0]["name"] for x in listed] == ["task", "task"]
        assert identity.chessmaster_token(first) != identity.chessmaster_token(second)


PRINT_URLS = (
    "import json, os; print(json.dumps({'url': os.environ['FRACTA_URL'], 'gateway': os.environ['FRACTA_GATEWAY_URL']}))"
)


def test_a_fracta_yaml_changed_after_the_control_plane_started_is_pointed_out(tmp_path: Path, cli: CliRunner) -> None:
    r = make_initialized(tmp_path / "repo", cli)
    with cleanup(r):
        assert cli("up", cwd=r.root).returncode == 0
        again = cli("up", cwd=r.root)
        assert again.returncode == 0 and "warning" not in again.stderr  # nothing changed since it started

        r.config_path.write_text(r.config_path.read_text().replace("max_agents: 4", "max_agents: 2"))
        started = r.control_path.stat().st_mtime
        os.utime(r.config_path, (started + 5, started + 5))  # edited after the start, whatever the clock's grain
        for args in (("up",), ("spawn", "task", "--", sys.executable, "-c", "pass")):
            result = cli(*args, cwd=r.root)
            assert result.returncode == 0, result.stderr
            assert "fracta.yaml changed after the control plane started" in result.stderr
            assert "fracta down && fracta up" in result.stderr

        assert cli("down", cwd=r.root).returncode == 0
        restarted = cli("up", cwd=r.root)  # started again: it reads the file as it is now
        assert restarted.returncode == 0 and "warning" not in restarted.stderr
