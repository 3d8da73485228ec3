"""Finding and importing strategy modules: `<folder>/<name>.py`, each defining `strategy`.

Modules are imported in the runner's process only (never in the gateway's, never in an agent's
workspace), and imported again when their file changes, so an edit takes effect at the next run.
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import StrategyInvalid, StrategyNotFound
from ..repo import Repo
from .api import Strategy


@dataclass(frozen=True)
class Loaded:
    """A strategy file: its strategy, or why it cannot be used."""

    name: str
    path: Path
    strategy: Strategy | None = None
    error: StrategyInvalid | None = None

    def require(self) -> Strategy:
        if self.error is not None:
            raise self.error
        assert self.strategy is not None
        return self.strategy


@dataclass
class Loader:
    """The strategies of one folder, imported once per version of each file."""

    folder: Path
    _cache: dict[Path, tuple[tuple[int, int], Loaded]] = field(default_factory=dict)

    @classmethod
    def of(cls, repo: Repo) -> Loader:
        return cls(repo.root / str(repo.config.get("strategies.folder")))

    def names(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted(p.stem for p in self.folder.glob("*.py") if not p.name.startswith("_"))

    def all(self) -> list[Loaded]:
        return [self.load(name) for name in self.names()]

    def load(self, name: str) -> Loaded:
        path = self.folder / f"{name}.py"
        if not name.isidentifier() or not path.is_file():
            known = ", ".join(self.names()) or f"none (no strategies in {self.folder})"
            raise StrategyNotFound(f"there is no strategy named {name!r}", f"strategies here: {known}")
        stat = path.stat()
        version = (stat.st_mtime_ns, stat.st_size)
        cached = self._cache.get(path)
        if cached is not None and cached[0] == version:
            return cached[1]
        loaded = import_file(name, path)
        self._cache[path] = (version, loaded)
        return loaded

    def get(self, name: str) -> Strategy:
        return self.load(name).require()


def import_file(name: str, path: Path) -> Loaded:
    """Import `path` as a fresh module (a plain step's process does too, without the cache); any
    failure becomes a StrategyInvalid naming file and line."""
    module_name = f"fracta_strategy_{name}"
    try:
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclasses and pydantic look their module up by name
        try:
            spec.loader.exec_module(module)
        finally:
            sys.modules.pop(module_name, None)
    except StrategyInvalid as exc:
        return Loaded(name, path, error=StrategyInvalid(f"{path.name}: {exc.message}", exc.hint))
    except (Exception, SystemExit) as exc:  # a strategy file is user code: whatever it raises is its error
        where = _line_in(exc, path)
        why = f"{type(exc).__name__}: {exc}".rstrip(": ")
        error = StrategyInvalid(
            f"strategy file {path.name} does not import{where}: {why}", "fix it; it is imported again when it changes"
        )
        return Loaded(name, path, error=error)
    found = getattr(module, "strategy", None)
    if not isinstance(found, Strategy):
        error = StrategyInvalid(
            f"strategy file {path.name} defines no `strategy`",
            "declare it: strategy = Strategy(name, description, ...) (docs/strategies.md)",
        )
        return Loaded(name, path, error=error)
    if found.name != name:
        error = StrategyInvalid(f"{path.name} declares the strategy {found.name!r}", f"name it {name!r}, as its file")
        return Loaded(name, path, error=error)
    try:
        found.layers()  # a cycle or an unknown dependency: an error now, not when it runs
    except StrategyInvalid as exc:
        return Loaded(name, path, error=exc)
    return Loaded(name, path, strategy=found)


def _line_in(exc: BaseException, path: Path) -> str:
    """ " (line N)" of the last frame in `path`, if the traceback passes through it."""
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f" (line {exc.lineno})"
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
    return f" (line {lines[-1]})" if lines else ""
