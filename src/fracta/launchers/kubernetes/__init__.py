"""The Kubernetes Job launcher (`launcher.kind: kubernetes`; the `fracta[k8s]` extra).

settings (launcher.kubernetes, typed) → manifest (the Job of one turn, plain data) → api (the
official client: the only import of `kubernetes`) → launcher (start, stop, output) → watch and
settle (Job status followed by watch; turns whose runner could not record are settled).
Importing this package imports nothing heavy; `launcher` and `api` do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .launcher import KubernetesLauncher

__all__ = ["KubernetesLauncher"]


def __getattr__(name: str) -> Any:
    """KubernetesLauncher on first use (launchers.create): the client is imported only then."""
    if name == "KubernetesLauncher":
        from .launcher import KubernetesLauncher

        return KubernetesLauncher
    raise AttributeError(name)
