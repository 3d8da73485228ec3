"""Fresh bytecode for fracta's modules before a benchmark starts fracta processes.

`pip install` compiles a package's modules; an editable install leaves that to the first import,
and with PYTHONDONTWRITEBYTECODE set (as on these machines) the bytecode is never written, so
every process would compile every edited module again. Benchmarks measure fracta as installed.
"""

from __future__ import annotations

import compileall
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


def ensure() -> None:
    if not compileall.compile_dir(str(SRC), quiet=1):
        raise SystemExit(f"could not compile the modules under {SRC}")
