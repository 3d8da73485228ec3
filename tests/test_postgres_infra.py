"""The PostgreSQL store's footing, against a real server the suite starts (tests/pg.py): connecting
with clear errors and no password shown, operations retried across a lost connection, versioned
migrations applied once by concurrent processes, LISTEN surviving a killed connection, and
`fracta doctor` on a postgres configuration."""

from __future__ import annotations

import json
import queue
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pg
import pytest
from conftest import CliRunner

pg.require()  # no PostgreSQL to be had: skip loudly (or fail with FRACTA_REQUIRE_POSTGRES=1)

import psycopg  # noqa: E402

from fracta import config, config_check  # noqa: E402
from fracta import repo as repo_mod  # noqa: E402
from fracta.errors import EXIT_UNAVAILABLE, EXIT_USAGE, ConfigError, SchemaTooNew, StoreUnavailable  # noqa: E402
from fracta.store.postgres import connect, listen, migrations  # noqa: E402
from fracta.store.postgres.migrations import Migration  # noqa: E402

TWO = [
    Migration(1, "first table", "CREATE TABLE one (id int PRIMARY KEY); SELECT pg_sleep(0.3)"),
    Migration(2, "second table", "CREATE TABLE two (id int PRIMARY KEY); INSERT INTO two VALUES (1)"),
]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when this returns: nothing listens there


def assert_secret_free(error: StoreUnavailable, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in error.message and secret not in error.hint, (error.message, error.hint)


# --- connecting ------------------------------------------------------------------------------------


def test_a_pool_runs_each_operation_in_a_transaction_committed_only_when_it_succeeds(pg_url: str) -> None:
    with connect.open_pool(pg_url, size=2) as pool:
        connect.run(pool, lambda c: c.execute("CREATE TABLE t (v int)"))

        def insert_then_fail(conn: psycopg.Connection) -> None:
            conn.execute("INSERT INTO t VALUES (1)")
            raise ValueError("changed my mind")

        with pytest.raises(ValueError):
            connect.run(pool, insert_then_fail)
        connect.run(pool, lambda c: c.execute("INSERT INTO t VALUES (2)"))
        assert connect.run(pool, lambda c: c.execute("SELECT v FROM t").fetchall()) == [(2,)]


def test_an_unreachable_server_is_unavailable_exit_8_naming_host_and_port_not_the_password() -> None:
    port = closed_port()
    url = f"postgresql://fracta:s3cret-pw@127.0.0.1:{port}/fracta"
    with pytest.raises(StoreUnavailable) as err:
        connect.connect(url)
    assert err.value.exit_code == EXIT_UNAVAILABLE == 8
    assert f"127.0.0.1:{port}" in err.value.message and "connection refused" in err.value.message
    assert "FRACTA_DATABASE_URL" in err.value.hint and "state.url" in err.value.hint
    assert_secret_free(err.value, "s3cret-pw")
    with pytest.raises(StoreUnavailable) as err:
        connect.open_pool(url, retry_seconds=0.5)  # refused is tried again for the retry time, then final
    assert "connection refused" in err.value.message
    assert_secret_free(err.value, "s3cret-pw")


def test_a_server_that_is_away_when_fracta_starts_is_waited_for_within_the_retry_time(pg_server: pg.PgServer) -> None:
    url = pg_server.url(pg_server.create_database())
    down = threading.Event()

    def crash() -> None:
        down.set()
        pg_server.restart(down_for=2.0)

    crashing = threading.Thread(target=crash)
    crashing.start()
    try:
        down.wait()
        while _answers(url):  # until the immediate stop has taken it down
            time.sleep(0.01)
        with connect.open_pool(url, size=1, retry_seconds=60) as pool:  # refused now: waited for, not final
            assert connect.run(pool, lambda c: c.execute("SELECT 41 + 1").fetchone()) == (42,)
    finally:
        crashing.join()


def _answers(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=2).close()
    except psycopg.OperationalError:
        return False
    return True


def test_a_wrong_password_says_password_authentication_failed_for_the_user_and_never_the_password(
    pg_server: pg.PgServer, pg_url: str
) -> None:
    pg_server.create_role("alice", "right-horse-battery")
    url = pg_server.url(pg_url.rsplit("/", 1)[1], user="alice", password="wrong-horse-battery")
    with pytest.raises(StoreUnavailable) as err:
        connect.open_pool(url)
    assert 'password authentication failed for user "alice"' in err.value.message
    assert f"127.0.0.1:{pg_server.port}" in err.value.message
    assert "password" in err.value.hint and "FRACTA_DATABASE_URL" in err.value.hint
    assert_secret_free(err.value, "wrong-horse-battery", "right-horse-battery")
    right = pg_server.url(pg_url.rsplit("/", 1)[1], user="alice", password="right-horse-battery")
    connect.connect(right).close()


def test_an_unknown_database_is_named(pg_server: pg.PgServer) -> None:
    with pytest.raises(StoreUnavailable) as err:
        connect.connect(pg_server.url("no_such_db"))
    assert 'database "no_such_db" does not exist' in err.value.message
    assert "create it" in err.value.hint
    assert_secret_free(err.value, pg_server.password)


@pytest.mark.parametrize(
    "url", ["postgresql://u:hunter2@127.0.0.1:notaport/db", "postgresql://u:hunter2@127.0.0.1/db?colour=blue"]
)
def test_a_malformed_url_is_a_config_error_without_its_password(url: str) -> None:
    with pytest.raises(ConfigError) as err:
        connect.connect(url)
    assert err.value.exit_code == EXIT_USAGE
    assert "hunter2" not in err.value.message and "u:***@" in err.value.message
    assert "not a valid PostgreSQL URL" in err.value.message


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:secret@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgres://u:p%40ss@h/db?sslmode=require", "postgres://u:***@h/db?sslmode=require"),
        ("postgresql://u:pa@ss@h/db", "postgresql://u:***@h/db"),  # an unencoded @ in the password
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgresql://h:5432/db?options=a@b", "postgresql://h:5432/db?options=a@b"),
        (
            "postgresql://h/db?user=u&password=secret&sslmode=require",
            "postgresql://h/db?user=u&password=***&sslmode=require",
        ),
        ("postgresql:///db?PASSWORD=secret", "postgresql:///db?PASSWORD=***"),
        ("host=h user=u password=secret dbname=d", "host=h user=u password=*** dbname=d"),
        ("host=h password = 'se cret' dbname=d", "host=h password = *** dbname=d"),
    ],
)
def test_redact_hides_the_password_wherever_a_url_carries_it(url: str, shown: str) -> None:
    assert connect.redact(url) == shown
    secrets = connect.secrets_of(url)
    assert bool(secrets) == ("***" in shown)
    for secret in secrets:
        assert secret not in connect.redact(url) and secret not in connect.scrub(f"failed: {url}", url)


# --- operations across a lost connection -----------------------------------------------------------


def test_an_operation_whose_connection_was_killed_is_run_again_on_a_new_one(
    pg_server: pg.PgServer, pg_url: str
) -> None:
    with connect.open_pool(pg_url, size=1) as pool:
        first = connect.run(pool, lambda c: c.info.backend_pid)
        assert pg_server.terminate(first)
        again = connect.run(pool, lambda c: c.info.backend_pid)
        assert again != first


def test_a_database_that_stays_away_is_unavailable_after_the_retry_time_naming_it(pg_server: pg.PgServer) -> None:
    name = pg_server.create_database()
    url = pg_server.url(name)
    with connect.open_pool(url, size=1, retry_seconds=1) as pool:
        connect.run(pool, lambda c: c.execute("SELECT 1"))
        pg_server.drop_database(name)  # FORCE: its connections are cut, and it is gone for good
        with pytest.raises(StoreUnavailable) as err:
            connect.run(pool, lambda c: c.execute("SELECT 1"), retry_seconds=1)
    assert "lost the connection for 1s" in err.value.message
    assert f'database "{name}" at 127.0.0.1:{pg_server.port}' in err.value.message
    assert "does not exist" in err.value.message
    assert_secret_free(err.value, pg_server.password)


# --- migrations ------------------------------------------------------------------------------------


def test_migrations_apply_once_and_are_recorded_with_their_descriptions(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        assert migrations.current_version(conn) == 0
        assert migrations.apply(conn, TWO) == [1, 2]
        assert migrations.apply(conn, TWO) == []
        assert migrations.current_version(conn) == 2
        rows = conn.execute("SELECT version, description FROM fracta_schema ORDER BY version").fetchall()
        assert rows == [(1, "first table"), (2, "second table")]
        assert conn.execute("SELECT count(*) FROM two").fetchone() == (1,)


def test_a_failing_migration_leaves_the_database_as_it_was(pg_url: str) -> None:
    broken = [TWO[0], Migration(2, "broken", "CREATE TABLE two (id int PRIMARY KEY); SELECT * FROM nowhere")]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UndefinedTable):
            migrations.apply(conn, broken)
        assert migrations.current_version(conn) == 0
        assert conn.execute("SELECT to_regclass('one')").fetchone() == (None,)


APPLY = """
import json, sys
import psycopg
from fracta.store.postgres import migrations
from fracta.store.postgres.migrations import Migration
steps = [Migration(v, d, s) for v, d, s in json.loads(sys.argv[2])]
sys.stdin.readline()  # every process is connected before any applies
with psycopg.connect(sys.argv[1]) as conn:
    print(json.dumps(migrations.apply(conn, steps)))
"""


def test_processes_starting_at_once_apply_each_migration_exactly_once(pg_url: str) -> None:
    steps = json.dumps([[m.version, m.description, m.sql] for m in TWO])
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", APPLY, pg_url, steps],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        out, errors = proc.communicate(timeout=120)
        assert proc.returncode == 0, errors
        results.append(json.loads(out))
    assert sorted(v for applied in results for v in applied) == [1, 2]
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT version FROM fracta_schema ORDER BY version").fetchall() == [(1,), (2,)]


def test_a_schema_newer_than_the_code_is_refused_naming_both_versions(pg_url: str) -> None:
    three = [*TWO, Migration(3, "from the future", "CREATE TABLE three (id int)")]
    with psycopg.connect(pg_url) as conn:
        migrations.apply(conn, three)
        with pytest.raises(SchemaTooNew) as err:
            migrations.apply(conn, TWO)
        assert migrations.current_version(conn) == 3
    assert err.value.exit_code == EXIT_USAGE
    assert "schema version 3" in err.value.message and "(version 2)" in err.value.message
    assert "upgrade fracta" in err.value.hint


# --- LISTEN ----------------------------------------------------------------------------------------


@pytest.fixture
def notices(pg_url: str) -> Iterator[tuple[listen.Listener, queue.Queue[listen.Notice]]]:
    heard: queue.Queue[listen.Notice] = queue.Queue()
    listener = listen.listen(pg_url, ["alpha", "beta"], heard.put)
    yield listener, heard
    listener.stop()


def test_the_listener_hears_notifications_and_after_its_connection_is_killed_reconnects_and_says_so(
    pg_server: pg.PgServer, pg_url: str, notices: tuple[listen.Listener, queue.Queue[listen.Notice]]
) -> None:
    listener, heard = notices
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("NOTIFY alpha, 'one'")
        assert heard.get(timeout=30) == listen.Notice("alpha", "one")
        first = listener.backend_pid
        assert first is not None and pg_server.terminate(first)
        assert heard.get(timeout=30) == listen.RECONNECTED  # notifications in the gap are lost: re-check
        assert listener.backend_pid not in (None, first)
        conn.execute("NOTIFY beta, 'two'")
        conn.execute("NOTIFY gamma, 'not listened to'")
        conn.execute("NOTIFY alpha, 'three'")
        assert [heard.get(timeout=30) for _ in range(2)] == [
            listen.Notice("beta", "two"),
            listen.Notice("alpha", "three"),
        ]
    listener.stop()
    assert not listener._thread.is_alive()


def test_a_listener_that_cannot_connect_says_why() -> None:
    url = f"postgresql://u:pw-not-shown@127.0.0.1:{closed_port()}/db"
    with pytest.raises(StoreUnavailable) as err:
        listen.listen(url, ["alpha"], lambda notice: None, timeout=2)
    assert "connection refused" in err.value.message
    assert_secret_free(err.value, "pw-not-shown")


# --- configuration and doctor ----------------------------------------------------------------------

POSTGRES = "state:\n  backend: postgres\n  url: ${FRACTA_DATABASE_URL}\n"


def use_postgres(r: repo_mod.Repo) -> None:
    text = r.config_path.read_text()
    start = text.index("state:\n")
    end = text.index("\n\n", start)
    r.config_path.write_text(text[:start] + POSTGRES + text[end + 1 :])


def doctor_state(cli: CliRunner, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], list[dict[str, str]]]:
    shown = cli("doctor", env=env)
    as_json = cli("doctor", "--json", env=env)
    return shown, [c for c in json.loads(as_json.stdout)["checks"] if c["area"] == "state"]


def test_doctor_checks_the_database_reachable_schema_and_listen_without_the_password(
    initialized: repo_mod.Repo, cli: CliRunner, pg_server: pg.PgServer, pg_url: str
) -> None:
    use_postgres(initialized)
    shown, checks = doctor_state(cli, {"FRACTA_DATABASE_URL": pg_url})
    assert [(c["name"], c["status"]) for c in checks] == [("database", "ok"), ("schema", "ok"), ("LISTEN/NOTIFY", "ok")]
    assert "PostgreSQL 1" in checks[0]["detail"] and f"127.0.0.1:{pg_server.port}" in checks[0]["detail"]
    assert "ok    database: PostgreSQL" in shown.stdout and "LISTEN/NOTIFY" in shown.stdout
    assert pg_server.password not in shown.stdout + shown.stderr + json.dumps(checks)


def test_doctor_names_a_wrong_password_and_a_newer_schema_as_failures(
    initialized: repo_mod.Repo, cli: CliRunner, pg_server: pg.PgServer, pg_url: str
) -> None:
    from fracta.store.postgres import schema

    use_postgres(initialized)
    name = pg_url.rsplit("/", 1)[1]
    pg_server.create_role("doc", "doc-secret-pw", dbname=name)
    shown, checks = doctor_state(cli, {"FRACTA_DATABASE_URL": pg_server.url(name, "doc", "not-doc-secret")})
    assert [c["status"] for c in checks] == ["fail"]
    assert 'password authentication failed for user "doc"' in checks[0]["detail"]
    assert shown.returncode != 0 and "not-doc-secret" not in shown.stdout + shown.stderr
    future = [Migration(v, f"step {v}", "SELECT 1") for v in range(1, schema.VERSION + 2)]
    with psycopg.connect(pg_url) as conn:
        migrations.apply(conn, future)
    shown, checks = doctor_state(cli, {"FRACTA_DATABASE_URL": pg_url})
    assert [(c["name"], c["status"]) for c in checks][:2] == [("database", "ok"), ("schema", "fail")]
    assert f"schema version {schema.VERSION + 1}" in checks[1]["detail"] and "upgrade fracta" in checks[1]["fix"]


def test_doctor_names_an_unset_database_url_variable(initialized: repo_mod.Repo, cli: CliRunner) -> None:
    use_postgres(initialized)
    shown = cli("doctor")
    assert shown.returncode == EXIT_USAGE, shown.stdout
    assert "state.url" in shown.stdout and "FRACTA_DATABASE_URL is not set" in shown.stdout


def test_backend_postgres_without_a_url_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "fracta.yaml"
    path.write_text("state:\n  backend: postgres\n")
    with pytest.raises(ConfigError) as err:
        config_check.check(path, env={})
    assert f"{path}:1: state: backend postgres needs url" in err.value.message
    path.write_text("state:\n  backend: postgres\n  url: postgresql://db/fracta\n  pool_size: 65\n")
    with pytest.raises(ConfigError) as err:
        config_check.check(path, env={})
    assert "state.pool_size: should be less than or equal to 64" in err.value.message


def test_the_templates_postgres_example_is_valid(tmp_path: Path) -> None:
    lines = config.TEMPLATE.splitlines()
    start = lines.index("state:")
    section = lines[start + 1 : lines.index("", start)]
    block = ["state:"] + [line.replace("  # ", "  ", 1) for line in section if line.startswith("  # ")]
    block = [line for line in block if not line.startswith("  For ")]
    path = tmp_path / "fracta.yaml"
    path.write_text(textwrap.dedent("\n".join(block)) + "\n")
    checked = config_check.check(path, env={"FRACTA_DATABASE_URL": "postgresql://u:p@db:5432/fracta"})
    assert checked.settings.state.backend == "postgres"
    assert checked.settings.state.url == "postgresql://u:p@db:5432/fracta"
