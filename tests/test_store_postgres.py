"""What only the PostgreSQL store does: its schema's version, a lost or missing database, and
the change notifications that survive a lost connection."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pg
import pytest
from store_helpers import agent, make_repo, message, open_postgres

from fracta.errors import ConfigError, SchemaTooNew, StoreUnavailable
from fracta.repo import Repo
from fracta.store import open_store as open_store_of
from fracta.store.base import INBOX, RESYNC, Store

WAIT = 30.0


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return make_repo(tmp_path / "project")


@pytest.fixture
def store(repo: Repo, pg_url: str) -> Iterator[Store]:
    opened = open_postgres(repo, pg_url)
    try:
        yield opened
    finally:
        opened.close()


def eventually(check: object, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def backends(server: pg.PgServer, url: str, but: int | None = None) -> list[int]:
    with server.admin() as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [urlsplit(url).path.lstrip("/")],
        ).fetchall()
    return [int(r[0]) for r in rows if r[0] != but]  # type: ignore[call-overload]


def test_opening_twice_applies_the_schema_once_and_keeps_the_data(repo: Repo, pg_url: str) -> None:
    first = open_postgres(repo, pg_url)
    first.agents.create(agent("one"), "tok")
    second = open_postgres(repo, pg_url)
    try:
        assert second.agents.names() == ["one"]
    finally:
        first.close()
        second.close()


def test_a_schema_from_a_newer_fracta_is_refused(repo: Repo, pg_url: str, pg_server: pg.PgServer) -> None:
    open_postgres(repo, pg_url).close()
    with pg_server.admin(urlsplit(pg_url).path.lstrip("/")) as conn:
        conn.execute("INSERT INTO fracta_schema (version, description) VALUES (999, 'from the future')")
    with pytest.raises(SchemaTooNew) as caught:
        open_postgres(repo, pg_url)
    assert "999" in caught.value.message


def test_an_unreachable_database_is_a_clear_error_without_the_password(repo: Repo, pg_server: pg.PgServer) -> None:
    # pg_server: this test, too, skips (loudly) where psycopg and PostgreSQL cannot be had
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(StoreUnavailable) as caught:
        open_postgres(repo, f"postgresql://fracta:s3cret-pw@127.0.0.1:{port}/fracta", retry=0.5)
    assert "s3cret-pw" not in str(caught.value) and "s3cret-pw" not in caught.value.hint
    assert str(port) in str(caught.value)


def test_a_lost_connection_is_retried(store: Store, pg_url: str, pg_server: pg.PgServer) -> None:
    store.agents.create(agent("one"), "tok")
    for pid in backends(pg_server, pg_url):
        pg_server.terminate(pid)
    assert store.agents.names() == ["one"]
    store.mail.deliver(message("one"), None)
    assert store.mail.unread_count("one") == 1


def test_a_subscriber_hears_resync_after_its_connection_is_lost(
    store: Store, pg_url: str, pg_server: pg.PgServer
) -> None:
    heard: list[str] = []
    stop = store.subscribe(heard.append)
    assert stop is not None
    try:
        store.agents.create(agent("one"), "tok")
        for pid in backends(pg_server, pg_url):
            pg_server.terminate(pid)
        eventually(lambda: RESYNC in heard, "RESYNC after the lost connection")
        store.mail.deliver(message("one"), None)
        eventually(lambda: INBOX + "one" in heard, "a notification on the new connection")
    finally:
        stop()


def test_fracta_yaml_selects_the_database_through_an_environment_variable(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "project")
    repo.config_path.write_text("state:\n  backend: postgres\n  url: ${FRACTA_TEST_DATABASE_URL}\n  pool_size: 2\n")
    monkeypatch.setenv("FRACTA_TEST_DATABASE_URL", pg_url)
    store = open_store_of(repo)
    try:
        assert store.backend == "postgres"
        store.agents.create(agent("one"), "tok")
    finally:
        store.close()
    monkeypatch.delenv("FRACTA_TEST_DATABASE_URL")
    with pytest.raises(ConfigError) as caught:
        open_store_of(make_repo(tmp_path / "other", config=repo.config_path.read_text()))
    assert "FRACTA_TEST_DATABASE_URL" in caught.value.message
