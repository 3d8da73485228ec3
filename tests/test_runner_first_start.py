"""A runtime's one-time set-up (Launch.first_start, OpenCode's database): run once per data folder,
by exactly one of several runners starting at once, and never again once its file exists."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fracta import runner

# Stands in for `opencode session list`: counts its runs, takes a while, then leaves the database.
SETUP = """
import os, sys, time
from pathlib import Path
data = Path(os.environ["XDG_DATA_HOME"]) / "tool"
with open(sys.argv[1], "a") as fh:
    fh.write(f"{os.getpid()}\\n")
time.sleep(0.3)
(data / "tool.db").write_text("migrated")
"""

# A runner's first step, in a process of its own (as each agent's runner is).
RUNNER = "import json, sys; from fracta import runner; runner.first_start(json.loads(sys.argv[1]))"


def launch(tmp_path: Path, data: Path) -> dict[str, object]:
    return {
        "argv": ["true"],
        "env": {"XDG_DATA_HOME": str(data)},
        "cwd": str(tmp_path),
        "first_start": {"argv": [sys.executable, "-c", SETUP, str(tmp_path / "runs")], "creates": "tool/tool.db"},
    }


def test_runners_starting_at_once_run_the_set_up_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    spec = json.dumps(launch(tmp_path, data))
    procs = [subprocess.Popen([sys.executable, "-c", RUNNER, spec]) for _ in range(4)]
    assert [proc.wait(timeout=120) for proc in procs] == [0, 0, 0, 0]
    assert len((tmp_path / "runs").read_text().splitlines()) == 1
    assert (data / "tool" / "tool.db").read_text() == "migrated"


def test_the_set_up_is_skipped_once_its_file_exists_and_without_one(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "tool").mkdir(parents=True)
    (data / "tool" / "tool.db").write_text("an earlier use")
    runner.first_start(launch(tmp_path, data))
    assert not (tmp_path / "runs").exists()
    runner.first_start({**launch(tmp_path, data), "first_start": None})
    assert not (tmp_path / "runs").exists()


def test_a_failing_set_up_does_not_stop_the_agent(tmp_path: Path) -> None:
    spec = launch(tmp_path, tmp_path / "data")
    spec["first_start"] = {"argv": [str(tmp_path / "missing-binary")], "creates": "tool/tool.db"}
    runner.first_start(spec)  # logged, not raised: the program starts and says what is wrong
