"""Free ports by default: two repositories' control planes run at once on an untouched fracta.yaml,
and everything that talks to one finds it through the URLs recorded in .fracta/control.json."""

from __future__ import annotations

import json
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
