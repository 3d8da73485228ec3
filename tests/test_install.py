"""The install users do: the wheel built from a checkout, installed with `uv tool install` into a
fresh folder, and `fracta demo` run from there with a PATH that has no fracta on it.

The demo spawns two agents that commit (so the post-commit hook runs in their worktrees) and
starts and stops the control plane: if the hook, the runner or the control plane found fracta
through PATH rather than by absolute path, this would fail. Dependencies are resolved from the
package index through uv's cache, so only the first run on a machine downloads them. Measured on a
2-core machine shared with other work: the install took 4 s with an empty cache; the whole module
took 12-22 s (build 3-8 s, install and demo 5-10 s).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BARE_PATH = os.pathsep.join(p for p in ("/usr/local/bin", "/usr/bin", "/bin") if Path(p).is_dir())


def uv(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "uv", *args], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, f"uv {' '.join(args)} failed:\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built as `uv build` does it: the sdist first, then the wheel from the sdist."""
    out = tmp_path_factory.mktemp("dist")
    uv("build", "--python", sys.executable, "--out-dir", str(out), str(ROOT), env=dict(os.environ))
    (found,) = out.glob("fracta-*.whl")
    return found


def test_the_sdist_carries_what_the_readme_links_to(wheel: Path) -> None:
    import tarfile

    (sdist,) = wheel.parent.glob("fracta-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    linked = set(re.findall(r"\]\(((?!https?:|#)[^)]+)\)", (ROOT / "README.md").read_text()))
    assert linked, "the README links to files of the repository"
    for target in linked:
        assert target.rstrip("/") in names, f"README links to {target}, which the sdist lacks"
    assert {"LICENSE", "scripts/demo", ".fracta.example/agents/api/agent.json"} <= names


def test_the_wheel_holds_the_package_its_license_and_no_bytecode(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
        metadata = whl.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "fracta/templates/agent_prompt.md" in names
    # Every deployment scaffold's templates (`fracta init --scaffold`), dotless names included.
    assert {
        "fracta/templates/scaffold/common/Dockerfile",
        "fracta/templates/scaffold/common/wheels/README.md",
        "fracta/templates/scaffold/compose/docker-compose.yml",
        "fracta/templates/scaffold/k8s/components/managed-services/kustomization.yaml",
        "fracta/templates/scaffold/k8s/make-secrets.sh",
        "fracta/templates/scaffold/k8s/Makefile",
    } <= set(names)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert "License-Expression: MIT" in metadata
    assert "Classifier: Operating System :: MacOS" in metadata


def test_fracta_installed_with_uv_tool_runs_its_demo_without_fracta_on_path(wheel: Path, tmp_path: Path) -> None:
    tools, bin_dir, home = tmp_path / "tools", tmp_path / "bin", tmp_path / "home"
    home.mkdir()
    env = {
        **os.environ,
        "UV_TOOL_DIR": str(tools),
        "UV_TOOL_BIN_DIR": str(bin_dir),
        "UV_PYTHON_DOWNLOADS": "never",  # the interpreter running the tests, never a downloaded one
    }
    uv("tool", "install", "--python", sys.executable, str(wheel), env=env)
    fracta = bin_dir / "fracta"
    assert fracta.exists()
    assert shutil.which("fracta", path=BARE_PATH) is None, f"a fracta on {BARE_PATH} would hide the point"

    bare = {
        "PATH": BARE_PATH,
        "HOME": str(home),
        "GIT_CONFIG_GLOBAL": os.environ["GIT_CONFIG_GLOBAL"],
        "GIT_CONFIG_NOSYSTEM": "1",
        "TMPDIR": str(tmp_path),
    }
    result = subprocess.run(
        [str(fracta), "demo", "--keep"], capture_output=True, text=True, env=bare, cwd=home, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "$ fracta merge docs" in result.stdout
    found = re.search(r"\.fracta/ created in (\S+);", result.stdout)
    assert found is not None, result.stdout
    state = Path(found.group(1)) / ".fracta"

    # Both agents ran to the end under the tool's own Python (the demo kills them after merging,
    # so their records are gone: the event log keeps their exits)...
    events = [json.loads(line) for line in (state / "events.jsonl").read_text().splitlines()]
    exits = {e["agent"]: e["status"] for e in events if e["event"] == "agent.exited"}
    assert exits == {"api": "done", "docs": "done"}
    # ... and the hook their commits ran found fracta by the absolute path written into it.
    hook = (state.parent / ".git" / "hooks" / "post-commit").read_text()
    assert f"python={tools / 'fracta' / 'bin' / 'python'}\n" in hook
    logged = [json.loads(line) for line in (state / "logs" / "hooks.log").read_text().splitlines()]
    assert {entry.get("agent") for entry in logged} == {"api", "docs"}
    assert all(entry["level"] == "info" for entry in logged), logged
