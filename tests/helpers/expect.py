"""Checks shared by the CLI error tests: a clean error, and "nothing was written"."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def clean_error(result: subprocess.CompletedProcess[str], exit_code: int, *fragments: str, hint: bool = True) -> None:
    """The command failed with `exit_code`, an error (and a hint) on stderr, and no traceback."""
    assert result.returncode == exit_code, (result.returncode, result.stdout, result.stderr)
    assert result.stderr.startswith("error: "), result.stderr
    assert not hint or "\nhint: " in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


def tree(root: Path) -> dict[str, int]:
    """Every file (with its size) and folder (-1) under `root`: equal snapshots mean nothing was written."""
    found: dict[str, int] = {}
    for folder, dirs, files in os.walk(root):
        base = Path(folder).relative_to(root)
        for name in dirs:
            found[str(base / name)] = -1
        for name in files:
            found[str(base / name)] = (Path(folder) / name).stat().st_size
    return found


def inbox_files(state: Path) -> list[str]:
    """Every file in every inbox (tmp/, new/ and cur/) under a .fracta/ folder."""
    return sorted(str(p.relative_to(state)) for p in state.glob("**/inbox/*/*"))
