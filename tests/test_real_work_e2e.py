"""Real agents doing real work: the seed's dependent-work flow with each runtime's own edit and shell
tools, under the scripted model and the runtime's default fracta configuration.

Agent a writes calc.py and its test with its own write tool, runs the tests with its shell tool,
commits on feature/a and reports. Agent b's first turn ends idle, waiting for a. The chessmaster
(this test, on the CLI) runs `fracta merge a --notify`: b is woken by "main updated; run git merge
main", merges main in its worktree, writes stats.py (which imports calc), runs the tests, commits
and reports; the chessmaster merges b. Everything is checked on git, on files and on fracta's
records, never on what a tool call claimed.

The only runtime options are the model wiring of ai_clis.runtime_options: permissions are fracta's
defaults (docs/permissions.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from ai_clis import enter_isolated_env, runtime_options
from conftest import CliRunner, git
from lifecycle_helpers import cleanup, use_free_port, wait_for
from scripted_model import Agent, ScriptedModel, Step, call, say

from fracta import agents, mailbox
from fracta import repo as repo_mod
from fracta.control import daemon

pytestmark = pytest.mark.timeout(600)

CALC = "def add(a, b):\n    return a + b\n"
TEST_CALC = (
    "import unittest\n\nfrom calc import add\n\n\n"
    "class AddTest(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n"
)
STATS = (
    "from calc import add\n\n\ndef total(numbers):\n    result = 0\n"
    "    for n in numbers:\n        result = add(result, n)\n    return result\n"
)
TEST_STATS = (
    "import unittest\n\nfrom stats import total\n\n\n"
    "class TotalTest(unittest.TestCase):\n    def test_total(self):\n        self.assertEqual(total([1, 2, 3]), 6)\n"
)


@dataclass(frozen=True)
class Tools:
    """One runtime's own built-in tools, as its CLI offers them to the model."""

    shell_tool: str  # the tool name the scripted model matches (and results_of looks up)
    write: Callable[[Path, str], Step]
    shell: Callable[[str], Step]
    test_command: str  # what "run the tests" is in this runtime's shell
    test_passed: str  # what the test command prints when the tests pass


def _apply_patch(path: Path, content: str) -> str:
    """Codex's own file tool through its shell: Codex intercepts `apply_patch` and applies the patch."""
    body = "".join(f"+{line}\n" for line in content.splitlines())
    return f"apply_patch <<'PATCH'\n*** Begin Patch\n*** Add File: {path}\n{body}*** End Patch\nPATCH"


TOOLS = {
    "claude": Tools(
        "Bash",
        lambda p, c: call("Write", file_path=str(p), content=c),
        lambda cmd: call("Bash", command=cmd, description="run a command"),
        "python -m pytest -q -p no:cacheprovider",
        "passed",
    ),
    "opencode": Tools(
        "bash",
        lambda p, c: call("write", filePath=str(p), content=c),
        lambda cmd: call("bash", command=cmd, description="run a command"),
        "python -m pytest -q -p no:cacheprovider",
        "passed",
    ),
    # Codex (0.169, for a model it does not know) offers exec_command and no apply_patch tool: files
    # are written through the shell's apply_patch, which Codex runs itself. Its shell is `bash -lc`,
    # whose PATH is Debian's /etc/profile's: python3 with the standard library's unittest.
    "codex": Tools(
        "exec_command",
        lambda p, c: call("exec_command", cmd=_apply_patch(p, c)),
        lambda cmd: call("exec_command", cmd=cmd),
        "python3 -m unittest -v",
        "OK",
    ),
}


def script_a(t: Tools, worktree: Path, outside: Path) -> list[Step]:
    return [
        call("fracta_set_intent", name="a", intent="writing calc.py"),
        t.write(outside, "an agent wrote here\n"),  # outside its worktree: refused by default
        t.write(worktree / "calc.py", CALC),
        t.write(worktree / "test_calc.py", TEST_CALC),
        t.shell(t.test_command),
        t.shell("git add calc.py test_calc.py && git commit -q -m 'calc: add'"),
        call("fracta_send", {"from": "a", "to": "chessmaster", "message": "calc.py is ready on feature/a"}),
        say("FINAL a"),
    ]


def script_b(t: Tools, worktree: Path) -> list[Step]:
    return [
        call("fracta_set_intent", name="b", intent="waiting for a's calc.py"),
        say("I wait for a: calc.py is not on main yet."),  # the first turn ends: b goes idle
        call("fracta_inbox", name="b"),  # the woken run reads the chessmaster's notice
        t.shell("git merge main"),
        t.write(worktree / "stats.py", STATS),
        t.write(worktree / "test_stats.py", TEST_STATS),
        t.shell(t.test_command),
        t.shell("git add stats.py test_stats.py && git commit -q -m 'stats: total over calc.add'"),
        call("fracta_send", {"from": "b", "to": "chessmaster", "message": "stats.py is ready on feature/b"}),
        say("FINAL b"),
    ]


@pytest.fixture
def llm() -> Iterator[ScriptedModel]:
    with ScriptedModel() as model:
        yield model


WIRED = [".mcp.json", ".codex/config.toml", "opencode.json"]  # what `fracta init` wrote, committed


@pytest.fixture
def project(
    initialized: repo_mod.Repo, llm: ScriptedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[repo_mod.Repo]:
    """A repo whose runtimes talk to the scripted model, with the AI CLI configs `fracta init` wrote
    committed (as a team would), so every agent's worktree has them. fracta runs with an isolated
    environment, a `fracta` that logs each command first on PATH, then this venv (python, pytest)."""
    git(initialized.root, "add", *WIRED)
    git(initialized.root, "commit", "-q", "-m", "wire fracta into the AI CLIs")
    enter_isolated_env(tmp_path / "env", monkeypatch, None)
    venv = Path(sys.executable).parent
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "fracta").write_text(f'#!/bin/sh\necho "$*" >> {shim / "calls.log"}\nexec {venv / "fracta"} "$@"\n')
    (shim / "fracta").chmod(0o755)
    monkeypatch.setenv("PATH", os.pathsep.join([str(shim), str(venv), os.environ["PATH"]]))
    table = {r: runtime_options(r, llm) for r in TOOLS}
    text = initialized.config_path.read_text().replace("agent_runtimes: {}", f"agent_runtimes: {json.dumps(table)}")
    initialized.config_path.write_text(text)
    use_free_port(initialized)
    with cleanup(initialized):
        yield initialized


def explain(r: repo_mod.Repo, name: str, model: Agent) -> str:
    out = r.agent_dir(name) / "output.jsonl"
    tail = out.read_text()[-4000:] if out.exists() else "(no output)"
    results = [(x.text[:300], x.is_error) for x in model.tool_results()]
    return f"record: {agents.load(r, name)}\noutput: {tail}\nmodel saw: {results}\nmodel errors: {model_errors(model)}"


def model_errors(model: Agent) -> list[str]:
    assert model._model is not None
    return [e for e in model._model.errors if e.startswith(f"{model.name}:")]


def idle_after(r: repo_mod.Repo, name: str, model: Agent, steps: int, timeout: float = 240.0) -> agents.Agent:
    """Wait until `name`'s run is over, and check that it played its script up to `steps` model turns."""
    ended = {"idle", "done", "failed", "killed", "lost"}
    wait_for(
        f"{name} to finish its turn",
        lambda: agents.load(r, name).status.value in ended,
        timeout,
        lambda: explain(r, name, model),
    )
    agent = agents.load(r, name)
    assert agent.status == agents.Status.IDLE and len(model.model_calls()) >= steps, explain(r, name, model)
    return agent


def files(root: Path) -> set[str]:
    """Every file under `root` outside .git and .fracta, relative."""
    found = set()
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if path.is_file() and rel.parts[0] not in (".git", ".fracta"):
            found.add(str(rel))
    return found


def reflog(root: Path, ref: str) -> list[str]:
    return git(root, "reflog", "show", "--format=%H %gs", ref).splitlines()


def run_ok(cli: CliRunner, *args: str) -> str:
    result = cli(*args)
    assert result.returncode == 0, f"fracta {' '.join(args)}: {result.stderr}"
    return result.stdout


@pytest.mark.parametrize("runtime", list(TOOLS))
def test_agents_edit_test_commit_and_build_on_each_others_work_with_their_own_tools(
    project: repo_mod.Repo, llm: ScriptedModel, cli: CliRunner, runtime: str, tmp_path: Path
) -> None:
    root, tools = project.root, TOOLS[runtime]
    escape = root / "escaped.txt"  # in the user's checkout
    a = llm.agent("a", script_a(tools, project.worktrees_dir / "a", escape))
    b = llm.agent("b", script_b(tools, project.worktrees_dir / "b"))
    status_before = git(root, "status", "--porcelain", "--untracked-files=all")
    files_before = files(root)
    main_before = reflog(root, "main")

    run_ok(cli, "spawn", "a", "--runtime", runtime, "--prompt", "Write calc.py with add(a, b), tested.")
    run_ok(cli, "spawn", "b", "--runtime", runtime, "--prompt", "When a's calc.py is on main, write stats.py.")
    idle_after(project, "a", a, len(a.steps))
    idle_after(project, "b", b, 2)
    a_commit = git(root, "rev-parse", "feature/a")
    assert git(root, "log", "-1", "--format=%s", a_commit) == "calc: add", explain(project, "a", a)

    merged = json.loads(run_ok(cli, "merge", "a", "--notify", "--json"))
    assert merged["notified"] == ["b"], merged
    idle_after(project, "b", b, len(b.steps))
    b_commit = git(root, "rev-parse", "feature/b")
    assert git(root, "log", "-1", "--format=%s", b_commit) == "stats: total over calc.add", explain(project, "b", b)
    run_ok(cli, "merge", "b")

    # The files on main are the agents' work, and it works.
    assert git(root, "show", "main:calc.py") + "\n" == CALC
    assert git(root, "show", "main:stats.py") + "\n" == STATS
    assert git(root, "ls-tree", "-r", "--name-only", "main").split() == sorted(
        ["README.md", "calc.py", "stats.py", "test_calc.py", "test_stats.py", *WIRED]
    )
    done = subprocess.run([sys.executable, "-m", "unittest", "-v"], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0 and "Ran 2 tests" in done.stderr, done.stderr

    # Commits only on the agents' branches; main moved only by fracta merge; b merged main itself.
    start = main_before[0].split(" ", 1)[0]
    assert sorted(git(root, "rev-list", "--all", f"^{start}").split()) == sorted([a_commit, b_commit])
    assert git(root, "for-each-ref", "--format=%(refname)", "refs/heads").split() == [
        "refs/heads/feature/a",
        "refs/heads/feature/b",
        "refs/heads/main",
    ]
    assert [line.split(" ", 1)[1] for line in reflog(root, "feature/a")][:1] == ["commit: calc: add"]
    assert git(root, "log", "--format=%s", "main").splitlines() == [
        "stats: total over calc.add",
        "calc: add",
        "wire fracta into the AI CLIs",
        "initial commit",
    ]
    main_after = reflog(root, "main")
    moves = main_after[: len(main_after) - len(main_before)]
    assert [m.split(" ", 1)[1].split(":")[0] for m in moves] == [
        "merge refs/heads/feature/b",
        "merge refs/heads/feature/a",
    ], main_after
    assert main_after[-len(main_before) :] == main_before
    b_log = [line.split(" ", 1)[1] for line in reflog(root, "feature/b")]
    assert b_log[0] == "commit: stats: total over calc.add" and b_log[1].startswith("merge main: Fast-forward"), b_log
    assert git(root, "merge-base", "--is-ancestor", a_commit, "feature/b") == ""

    # The user's checkout: still on main, unchanged but for the merged files, nothing new or dirty.
    assert git(root, "symbolic-ref", "HEAD") == "refs/heads/main"
    assert git(root, "status", "--porcelain", "--untracked-files=all") == status_before
    assert files(root) == files_before | {"calc.py", "stats.py", "test_calc.py", "test_stats.py"}

    # Each test run really ran: its output reached the model in the next request.
    for model in (a, b):
        runs = [r.text for r in model.results_of(tools.shell_tool) if tools.test_passed in r.text]
        assert runs, explain(project, model.name, model)
    assert any("test_total" in r.text or "2 passed" in r.text for r in b.results_of(tools.shell_tool))
    # Every call succeeded but the write outside the worktree, which was refused and wrote nothing.
    refused = a.tool_results()[1]
    said = refused.text.lower()
    assert refused.is_error or "prevents you from using" in said or "rejected" in said, explain(project, "a", a)
    assert not escape.exists()
    failed = [r.text for r in a.tool_results()[2:] + b.tool_results() if r.is_error]
    assert not failed, failed

    # Each commit was recorded: progress.md's last commit, and a notice in the chessmaster's inbox.
    progress = project.progress_path.read_text()
    assert a_commit[:10] in progress and b_commit[:10] in progress, progress
    assert agents.load(project, "a").last_commit == a_commit
    assert agents.load(project, "b").last_commit == b_commit
    inbox = [(m.sender, m.body) for m in mailbox.read(project, "chessmaster").messages]
    assert ("a", f"a committed {a_commit[:7]} on feature/a: calc: add") in inbox, inbox
    assert ("b", f"b committed {b_commit[:7]} on feature/b: stats: total over calc.add") in inbox, inbox
    assert ("a", "calc.py is ready on feature/a") in inbox and ("b", "stats.py is ready on feature/b") in inbox
    assert not model_errors(a) and not model_errors(b)

    # peek reads cleanly: where each of b's two runs starts, and one usage line for each.
    peeked = run_ok(cli, "peek", "b", "-n", "500")
    assert peeked.count("── run started ──") == 1, peeked
    assert peeked.count(f"── woken: resuming session {agents.load(project, 'b').session_id} ──") == 1, peeked
    assert peeked.count(" tokens (") == 2, peeked

    # The committed configs never took over an agent's wiring: no agent started its own
    # `fracta serve` (the bridge for the chessmaster's own CLI) with the logging `fracta`, which
    # comes first on the PATH agents inherit from the control plane.
    shim = tmp_path / "shim"
    calls = (shim / "calls.log").read_text().splitlines() if (shim / "calls.log").exists() else []
    assert not [c for c in calls if c.startswith("serve")], calls
    info = daemon.read_info(project)
    assert info is not None
    environ = psutil.Process(info.pid).environ()
    assert environ["PATH"].split(os.pathsep)[0] == str(shim), environ["PATH"]
