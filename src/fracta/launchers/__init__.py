"""Launchers: how agents' turns run (a local runner, a process in the control plane's container,
a Kubernetes Job), chosen by `launcher.kind`. The protocol is in base.py.

Only the chosen launcher's module is imported, and building one is cheap: `fracta kill` and
`peek` build one on their way.
"""

from __future__ import annotations

import importlib

from ..errors import ConfigError
from ..repo import Repo
from .base import CONTAINER, KINDS, KUBERNETES, LOCAL, Launcher, Started

__all__ = ["CONTAINER", "KINDS", "KUBERNETES", "LOCAL", "Launcher", "Started", "create", "kind_of"]

# kind -> (module, class); each class is built as Class(repo).
REGISTRY: dict[str, tuple[str, str]] = {
    LOCAL: ("fracta.launchers.local", "LocalLauncher"),
    CONTAINER: ("fracta.launchers.container", "ContainerLauncher"),
    KUBERNETES: ("fracta.launchers.kubernetes", "KubernetesLauncher"),
}


def kind_of(repo: Repo) -> str:
    """The `launcher.kind` this repository's configuration names."""
    kind = str(repo.config.get("launcher.kind") or LOCAL)
    if kind not in REGISTRY:
        raise ConfigError(f"unknown launcher.kind {kind!r} in {repo.config_path}", f"use one of: {', '.join(KINDS)}")
    return kind


def create(repo: Repo) -> Launcher:
    """The launcher `launcher.kind` names, built for `repo` (its background work not started)."""
    kind = kind_of(repo)
    module, name = REGISTRY[kind]
    try:
        found = importlib.import_module(module)
    except ModuleNotFoundError as exc:  # the launcher's optional dependency (kubernetes: fracta[k8s])
        raise ConfigError(
            f"launcher.kind {kind} cannot be used here: {exc}",
            "install fracta with the extra it needs (e.g. fracta[k8s]), or choose another launcher.kind",
        ) from None
    launcher: Launcher = getattr(found, name)(repo)
    return launcher
