"""`fracta init --scaffold MODE`: fracta.yaml and deployment/ for local, Compose or Kubernetes mode.

The files come from templates shipped in the wheel (fracta/templates/scaffold/). A re-run never
overwrites a file the user edited, unless forced: `.fracta/scaffold.json` records the SHA-256 of
every file as fracta wrote it, so a file still equal to what was written (or to any template this
fracta ships for that path, e.g. the plain `fracta init` fracta.yaml) is fracta's to refresh, and
any other content is the user's. A forced overwrite first copies the user's version under
`.fracta/scaffold-backup/<time>/`, so nothing is lost silently.
"""

from __future__ import annotations

import enum
import hashlib
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from . import atomic, config
from .errors import CorruptRecord, InvalidInput, Refused
from .repo import Repo

MODES = ("local", "compose", "k8s")
REMOTE = ("compose", "k8s")  # modes whose control plane, and store, run elsewhere than this machine
MANIFEST = "scaffold.json"  # under .fracta/
BACKUPS = "scaffold-backup"  # under .fracta/
_EXECUTABLE = frozenset({"deployment/k8s/make-secrets.sh"})

# target path (relative to the repository root) -> template (relative to templates/scaffold/);
# None: the commented fracta.yaml of plain `fracta init` (config.TEMPLATE).
_K8S = (
    "kustomization.yaml",
    "namespace.yaml",
    "rbac.yaml",
    "workspace-pvc.yaml",
    "postgres.yaml",
    "falkordb.yaml",
    "control-plane.yaml",
    "gateway.yaml",
    "secret-templates.yaml",
    "make-secrets.sh",
    "Makefile",
    "components/managed-services/kustomization.yaml",
)
_IMAGE = {"deployment/Dockerfile": "common/Dockerfile", "deployment/wheels/README.md": "common/wheels/README.md"}
FILES: dict[str, dict[str, str | None]] = {
    "local": {"fracta.yaml": None},
    "compose": {
        "fracta.yaml": "compose/fracta.yaml",
        **_IMAGE,
        "deployment/compose/docker-compose.yml": "compose/docker-compose.yml",
    },
    "k8s": {"fracta.yaml": "k8s/fracta.yaml", **_IMAGE, **{f"deployment/k8s/{f}": f"k8s/{f}" for f in _K8S}},
}


class Outcome(enum.StrEnum):
    CREATED = "created"  # the file did not exist
    UPDATED = "updated"  # fracta's own earlier version, replaced by this fracta's template
    UNCHANGED = "unchanged"  # already the template's content
    KEPT = "kept"  # the user edited it: left alone (--force overwrites it)
    OVERWRITTEN = "overwritten"  # the user's version, replaced under --force (a backup was kept)


@dataclass(frozen=True)
class Written:
    path: str  # relative to the repository root
    outcome: Outcome
    backup: Path | None = None


@dataclass(frozen=True)
class ScaffoldResult:
    mode: str
    files: list[Written]

    @property
    def kept(self) -> list[str]:
        return [w.path for w in self.files if w.outcome is Outcome.KEPT]


def template(source: str | None) -> str:
    """The text of one shipped template (None: plain `fracta init`'s fracta.yaml)."""
    if source is None:
        return config.TEMPLATE
    return resources.files("fracta").joinpath("templates", "scaffold", *source.split("/")).read_text("utf-8")


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _shipped(path: str) -> set[str]:
    """Digests of every template this fracta ships for `path`, in any mode."""
    return {_digest(template(files[path]).encode()) for files in FILES.values() if path in files}


def _manifest(repo: Repo) -> dict[str, str]:
    path = repo.state / MANIFEST
    if not path.exists():
        return {}
    data = atomic.read_json(path)
    files = data.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise CorruptRecord(path, "'files' must map paths to SHA-256 digests")
    return {str(k): v for k, v in files.items()}


def materialise(repo: Repo, mode: str, force: bool = False) -> ScaffoldResult:
    """Write `mode`'s files into the repository; an edited file is kept unless `force`."""
    if mode not in FILES:
        raise InvalidInput(f"unknown scaffold {mode!r}", f"choose one of: {', '.join(MODES)}")
    recorded = _manifest(repo)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    done: list[Written] = []
    for rel, source in FILES[mode].items():
        text = template(source)
        done.append(_one(repo, rel, text, recorded, force, stamp))
        if done[-1].outcome is not Outcome.KEPT:
            recorded[rel] = _digest(text.encode())
    atomic.write_json(repo.state / MANIFEST, {"version": 1, "mode": mode, "files": dict(sorted(recorded.items()))})
    return ScaffoldResult(mode=mode, files=done)


def _one(repo: Repo, rel: str, text: str, recorded: dict[str, str], force: bool, stamp: str) -> Written:
    target = repo.root / rel
    mode = 0o755 if rel in _EXECUTABLE else 0o644
    if not target.exists():
        atomic.ensure_dirs(target.parent)
        atomic.write_text(target, text, mode=mode)
        return Written(rel, Outcome.CREATED)
    current = target.read_bytes()
    if current == text.encode():
        return Written(rel, Outcome.UNCHANGED)
    ours = _digest(current) == recorded.get(rel) or _digest(current) in _shipped(rel)
    if ours:
        atomic.write_text(target, text, mode=mode)
        return Written(rel, Outcome.UPDATED)
    if not force:
        return Written(rel, Outcome.KEPT)
    backup = repo.state / BACKUPS / stamp / rel
    atomic.ensure_dirs(backup.parent)
    atomic.write_bytes(backup, current, mode=0o600)
    atomic.write_text(target, text, mode=mode)
    return Written(rel, Outcome.OVERWRITTEN, backup)


def refuse_kept(result: ScaffoldResult) -> Refused | None:
    """The error to exit with when edited files were kept (everything else was written)."""
    if not result.kept:
        return None
    return Refused(
        f"kept {len(result.kept)} file(s) you edited: {', '.join(result.kept)}",
        f"compare them with the templates and merge by hand, or run `fracta init --scaffold {result.mode} --force` "
        "(your versions are then copied under .fracta/scaffold-backup/)",
    )
