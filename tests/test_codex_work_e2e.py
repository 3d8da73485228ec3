"""A Codex agent does real work with fracta's default config: the real `codex exec` under the
scripted model edits files with its own tool (apply_patch), runs a test, commits on its branch,
is woken by a message after `fracta merge` moved main, runs `git merge main` and commits again.
Its sandbox refuses writes into the user's checkout, another agent's worktree and main's ref.

Codex's shell tool, as 0.169 offers it: `exec_command` with `{"cmd": "<shell text>"}` (also
`workdir`, `login`, `tty`, `sandbox_permissions`...). A `cmd` that is an `apply_patch` heredoc is
taken by Codex itself and applied as a patch (a `file_change` item), not run by the shell.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from ai_clis import enter_isolated_env, runtime_options
from conftest import CliRunner, git
from lifecycle_helpers import cleanup, use_free_port, wait_for
from scripted_model import Agent, ScriptedModel, call, say

from fracta import agents
from fracta import repo as repo_mod

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def llm() -> Iterator[ScriptedModel]:
    with ScriptedModel() as model:
        yield model


@pytest.fixture
def project(
    initialized: repo_mod.Repo, llm: ScriptedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[repo_mod.Repo]:
    """A repo whose codex runtime talks to the scripted model and has no other option: fracta's
    default sandbox. The control plane runs in an isolated environment."""
    enter_isolated_env(tmp_path / "env", monkeypatch)
    table = {"codex": runtime_options("codex", llm)}
    assert set(table["codex"]["config"]) == {"model_provider", "model_providers"}  # nothing about the sandbox
    text = initialized.config_path.read_text().replace("agent_runtimes: {}", f"agent_runtimes: {json.dumps(table)}")
    initialized.config_path.write_text(text)
    use_free_port(initialized)
    with cleanup(initialized):
        yield initialized


def shell(command: str) -> object:
    """A step running `command` with Codex's own shell tool."""
    return call("exec_command", cmd=command)


def patch(*body: str) -> object:
    """A step editing files with Codex's own patch tool (an apply_patch heredoc)."""
    text = "\n".join(["*** Begin Patch", *body, "*** End Patch"])
    return shell(f"apply_patch <<'PATCH'\n{text}\nPATCH\n")


def settled(r: repo_mod.Repo, name: str, runs: int, model: Agent, timeout: float = 150.0) -> agents.Agent:
    """The record once the agent is idle after its `runs`-th scripted final answer."""
    wait_for(
        f"{name} to finish run {runs}",
        lambda: (
            agents.load(r, name).status.value in {"idle", "done", "failed"}
            and sum(1 for q in model.model_calls() if q.reply and q.reply.text and not q.reply.tool) >= runs
        ),
        timeout,
        explain=lambda: explain(r, name, model),
    )
    return agents.load(r, name)


def explain(r: repo_mod.Repo, name: str, model: Agent) -> str:
    out = r.agent_dir(name) / "output.jsonl"
    tail = out.read_text()[-4000:] if out.exists() else "(no output)"
    return f"record: {agents.load(r, name)}\noutput: {tail}\nmodel saw: {model.tool_results()}"


def commits(root: Path, spec: str) -> list[str]:
    """Subjects of the commits in `spec` (a range or a ref), newest first."""
    return git(root, "log", "--format=%s", spec).splitlines()


def test_a_codex_agent_edits_commits_merges_main_and_commits_again_inside_its_worktree_only(
    project: repo_mod.Repo, llm: ScriptedModel, cli: CliRunner
) -> None:
    root = project.root
    start = git(root, "rev-parse", "main")
    checkout = git(root, "status", "--porcelain", "--untracked-files=all")  # what init left there
    # Another agent's work, to be merged into main while the Codex agent waits.
    made = cli(
        "spawn",
        "adder",
        "--",
        "sh",
        "-c",
        "printf 'def add(a, b):\\n    return a + b\\n' > add.py && git add add.py && git commit -q -m 'add: add()'",
    )
    assert made.returncode == 0, made.stderr
    wait_for("adder to commit", lambda: agents.load(project, "adder").status.value in {"done", "idle", "failed"})
    adder_tip = git(root, "rev-parse", "feature/adder")
    assert commits(root, f"{start}..feature/adder") == ["add: add()"]
    other = root / ".fracta" / "worktrees" / "adder"

    model = llm.agent(
        "mul",
        [
            patch(
                "*** Add File: mul.py",
                "+def mul(a, b):",
                "+    return a * b",
                "*** Add File: test_mul.py",
                "+import unittest",
                "+from mul import mul",
                "+class T(unittest.TestCase):",
                "+    def test_mul(self):",
                "+        self.assertEqual(mul(6, 7), 42)",
            ),
            shell("python3 -m unittest -q test_mul 2>&1 && command -v git python3 fracta && echo TMP=$TMPDIR"),
            shell("git add mul.py test_mul.py && git commit -q -m 'mul: mul()' && git log --oneline -1"),
            shell(f"echo intruder > {root}/intruder.txt"),  # the user's checkout
            shell(f"echo intruder > {other}/intruder.txt"),  # another agent's worktree
            patch(f"*** Add File: {root}/patched.txt", "+patched"),  # Codex's own patch tool, same refusal
            shell("git update-ref refs/heads/main HEAD"),  # main's ref lives in the shared .git
            say("mul is ready"),
            # Woken by the chessmaster's message once main has moved:
            shell("git merge main"),
            patch(
                "*** Add File: calc.py",
                "+from add import add",
                "+from mul import mul",
                "+def muladd(a, b, c):",
                "+    return add(mul(a, b), c)",
            ),
            shell("python3 -c 'from calc import muladd; assert muladd(2, 3, 4) == 10' && git add calc.py"),
            shell("git commit -q -m 'calc: muladd() from add and mul' && git log --oneline -3"),
            say("merged main and built on it"),
        ],
    )
    spawned = cli("spawn", "mul", "--runtime", "codex", "--prompt", "Write mul(), test it and commit.")
    assert spawned.returncode == 0, spawned.stderr
    first = settled(project, "mul", 1, model)
    why = explain(project, "mul", model)
    assert first.status == agents.Status.IDLE and first.session_id, why
    tested, committed, into_root, into_other, patched, main_ref = [r.text for r in model.tool_results()[1:7]]

    # The work: a file written with its own tool, a test run, a commit on feature/mul only.
    assert "OK" in tested and "/git" in tested and "/python3" in tested, tested
    assert f"{Path(sys.executable).parent}/fracta" in tested, tested  # PATH is not reset by a login shell
    assert f"TMP={project.agent_dir('mul')}/tmp" in tested, tested
    assert "mul: mul()" in committed, committed
    assert commits(root, f"{start}..feature/mul") == ["mul: mul()"], why
    assert git(root, "show", "feature/mul:mul.py").startswith("def mul(a, b):")

    # Refused: the user's checkout, another agent's worktree, main's ref; nothing was written.
    assert "Read-only file system" in into_root and "Read-only file system" in into_other, (into_root, into_other)
    assert "patch rejected" in patched, patched
    assert "Read-only file system" in main_ref, main_ref
    assert not (root / "intruder.txt").exists() and not (other / "intruder.txt").exists()
    assert not (root / "patched.txt").exists()
    assert git(root, "rev-parse", "main") == start and git(root, "rev-parse", "feature/adder") == adder_tip

    # The chessmaster merges the other agent and tells this one; the message wakes it.
    merged = cli("merge", "adder")
    assert merged.returncode == 0, merged.stderr
    main_after = git(root, "rev-parse", "main")
    assert main_after == adder_tip  # a fast-forward: main moved only by fracta merge
    said = cli("say", "mul", f"main updated to {main_after[:10]}; run git merge main")
    assert said.returncode == 0 and "woke mul" in said.stdout, said.stdout + said.stderr
    second = settled(project, "mul", 2, model)
    why = explain(project, "mul", model)
    assert second.status == agents.Status.IDLE and second.session_id == first.session_id, why
    merge_out = model.tool_results()[7].text
    assert "Merge made" in merge_out, merge_out

    # History: main is exactly what fracta merge made it; the agent's commits are on feature/mul.
    assert git(root, "rev-parse", "main") == main_after
    assert commits(root, "main..feature/mul") == [
        "calc: muladd() from add and mul",
        "Merge branch 'main' into feature/mul",
        "mul: mul()",
    ], why
    merge_commit = git(root, "rev-parse", "feature/mul~1")
    assert git(root, "rev-parse", f"{merge_commit}^2") == main_after
    assert git(root, "show", "feature/mul:calc.py").startswith("from add import add")
    branches = {line.split()[0] for line in git(root, "branch", "--format=%(refname:short)").splitlines()}
    assert branches == {"main", "feature/adder", "feature/mul"}
    assert git(root, "rev-parse", "feature/adder") == adder_tip
    assert git(root, "status", "--porcelain", "--untracked-files=all") == checkout  # the user's checkout is untouched

    # peek reads cleanly: the commands themselves, the refused patch, no stdin note.
    peeked = cli("peek", "mul", "-n", "200")
    assert peeked.returncode == 0, peeked.stderr
    assert "shell('git merge main')" in peeked.stdout, peeked.stdout
    assert "shell('/bin/bash" not in peeked.stdout and "Reading additional input" not in peeked.stdout, peeked.stdout
    assert "tool call not run: patch rejected" in peeked.stdout, peeked.stdout


def test_a_permission_profile_in_the_users_codex_config_does_not_take_the_agents_commits_away(
    project: repo_mod.Repo, llm: ScriptedModel, cli: CliRunner
) -> None:
    # With `default_permissions` in config.toml, Codex 0.169 ignores sandbox_mode and writable_roots
    # and keeps the worktree's git folder read-only: fracta leaves that key out of the agent's config.
    user = Path(os.environ["HOME"]) / ".codex" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text('default_permissions = ":workspace"\n')
    model = llm.agent(
        "perm",
        [
            shell("echo hi > hi.txt && git add hi.txt && git commit -q -m 'hi: hello' && git log --format=%s -1"),
            say("ok"),
        ],
    )
    spawned = cli("spawn", "perm", "--runtime", "codex", "--prompt", "Commit hi.txt.")
    assert spawned.returncode == 0, spawned.stderr
    assert settled(project, "perm", 1, model).status == agents.Status.IDLE, explain(project, "perm", model)
    [committed] = model.tool_results()
    assert "hi: hello" in committed.text, committed.text
    assert commits(project.root, "main..feature/perm") == ["hi: hello"]
    assert user.read_text() == 'default_permissions = ":workspace"\n'
