"""The state store: one protocol (base.py), two backends (files/, postgres/), chosen in fracta.yaml.

    state:
      backend: postgres            # default: files (.fracta/ at the repo root)
      url: ${FRACTA_DATABASE_URL}

The core reaches the store as `repo.store` and never asks which backend it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..repo import Repo
    from .base import Store


def backend_of(repo: Repo) -> str:
    """The backend fracta.yaml selects. Unless a line that is not a comment sets some `backend:`
    other than files, fracta.yaml is not parsed at all: the CLI's fast paths (list, say, inbox)
    stay off the YAML parser (about 25 ms of imports and parsing on this machine, against
    0.05 ms for this scan). Such a line may be another section's: then the parse decides."""
    try:
        text = repo.config_path.read_bytes()
    except OSError:
        return "files"
    if not _names_a_backend(text):
        return "files"
    return str(repo.config.get("state.backend") or "files")


def _names_a_backend(text: bytes) -> bool:
    for line in text.splitlines():
        if b"backend:" not in line or line.lstrip().startswith(b"#"):
            continue
        value = line.split(b"backend:", 1)[1].split(b"#", 1)[0].strip(b" \t,}'\"")
        if value and value != b"files":
            return True
    return False


def open_store(repo: Repo) -> Store:
    backend = backend_of(repo)
    if backend == "postgres":
        from .postgres.store import open_from_config  # psycopg is imported only here, in postgres mode

        return open_from_config(repo)
    from .files import FileStore

    return FileStore(repo)


DEFAULT_LEASE = 15.0  # seconds: state.lease_seconds


def lease_of(repo: Repo) -> float:
    """How long a control plane's claims and supervision last unrenewed (state.lease_seconds)."""
    if backend_of(repo) == "files":
        return DEFAULT_LEASE
    return float(repo.config.get("state.lease_seconds"))
