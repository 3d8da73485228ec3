"""The database away for longer than state.retry_seconds under a running agent (postgres
backend): what a runner cannot record at once it records when the database is back, and never
gives up the agent it runs. Real control plane, real runner, a real PostgreSQL crashed and
restarted by the test."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pg
import pytest
from conftest import CliRunner
from lifecycle_helpers import cleanup, status, wait_for

from fracta import agents, journal
from fracta import repo as repo_mod

PY = sys.executable
DOWN = 4.0  # seconds the database stays away: well past retry_seconds (1)


@pytest.mark.parametrize("state_backend", ["postgres"])
def test_an_agent_starting_while_the_database_is_away_keeps_running_and_is_recorded_once_it_is_back(
    initialized: repo_mod.Repo, cli: CliRunner, pg_server: pg.PgServer, tmp_path: Path
) -> None:
    config = initialized.config_path
    config.write_text(config.read_text().replace("retry_seconds: 10", "retry_seconds: 1", 1))
    r = repo_mod.find(initialized.root, env={})
    paused, done = tmp_path / "paused", tmp_path / "done"
    with cleanup(r):
        env = {
            "PATH": f"{Path(PY).parent}{os.pathsep}{os.environ['PATH']}",
            journal.PAUSE_ENV: f"runner-started:{paused}",
        }
        assert cli("up", env=env).returncode == 0
        spawning = cli("spawn", "slow", "--", "sh", "-c", f"sleep 3; touch {done}")
        assert spawning.returncode == 0, spawning.stderr
        wait_for("the runner to start the program", paused.exists)
        crash = threading.Thread(target=pg_server.restart, kwargs={"down_for": DOWN})
        crash.start()
        wait_for("the database to go away", lambda: not _reachable(pg_server))
        Path(f"{paused}.go").touch()  # the runner records `running` now, with no database for 4 s
        crash.join()
        wait_for("the agent's program to finish", done.exists)
        wait_for("slow to be done", lambda: status(r, "slow") == "done", explain=lambda: _explain(r))
        assert agents.load(r, "slow").exit_code == 0


def _reachable(server: pg.PgServer) -> bool:
    try:
        with server.admin():
            return True
    except Exception:  # psycopg.OperationalError: refused while it is down
        return False


def _explain(r: repo_mod.Repo) -> str:
    log = r.agent_dir("slow") / "runner.log"
    return f"status {status(r, 'slow')}; runner.log:\n{log.read_text() if log.exists() else '(none)'}"
