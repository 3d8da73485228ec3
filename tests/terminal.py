"""Run the real `fracta` with a pseudo-terminal for stdout and stderr, as in a user's shell."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path


def in_a_terminal(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    """What `fracta ARGS` wrote to the terminal (its line ends back to \\n)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fracta", *args], stdin=follower, stdout=follower, stderr=follower, cwd=cwd, env=env
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # EIO: the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode().replace("\r\n", "\n")
