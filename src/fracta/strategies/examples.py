"""The example strategies shipped with fracta (fracta/templates/strategies/), copied into the
repository's strategies/ folder by `fracta strategy init`; a file already there is kept."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .. import atomic
from ..repo import Repo


@dataclass(frozen=True)
class Installed:
    folder: Path
    written: list[str]
    kept: list[str]


def shipped() -> dict[str, str]:
    """The example strategies by file name, and their text."""
    folder = resources.files("fracta") / "templates" / "strategies"
    return {f.name: f.read_text(encoding="utf-8") for f in folder.iterdir() if f.name.endswith(".py")}


def install(repo: Repo) -> Installed:
    """Copy the examples into strategies.folder; never overwrite a file of the same name."""
    folder = repo.root / str(repo.config.get("strategies.folder"))
    folder.mkdir(parents=True, exist_ok=True)
    written, kept = [], []
    for name, text in sorted(shipped().items()):
        target = folder / name
        if target.exists():
            kept.append(name)
        else:
            atomic.write_text(target, text)
            written.append(name)
    return Installed(folder, written, kept)
