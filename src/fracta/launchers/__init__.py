"""Launchers: how agents' turns run (a local runner, a process in the control plane's container,
a Kubernetes Job), chosen by `launcher.kind`. The protocol is in base.py."""

from __future__ import annotations

from .base import CONTAINER, KINDS, KUBERNETES, LOCAL, Launcher, Started

__all__ = ["CONTAINER", "KINDS", "KUBERNETES", "LOCAL", "Launcher", "Started"]
