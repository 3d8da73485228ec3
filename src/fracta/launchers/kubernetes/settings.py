"""The Kubernetes launcher's settings: `launcher.kubernetes` in fracta.yaml, typed once.

The schema (fracta/config_schema.py) validates the file; this reads the resolved values into the
one object the manifest, the client and the watch share, and checks what only the launcher
knows: the state folder must live on the workspace volume, where every Job's runner reads its
launch and writes the agent's output, and where the next Job finds the session to resume.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ...errors import ConfigError
from ...repo import Repo

DEFAULT_MOUNT = "/workspace"
DEFAULT_TTL = 3600  # seconds a finished Job is kept for `kubectl logs`, then garbage-collected
DEFAULT_DEADLINE = 7200  # seconds a turn may run before Kubernetes stops it
# <state>/agents/<task>/home: the runtime's HOME (its sessions) on the volume, in the agent's own
# folder, so it goes when the agent is removed (kill), as a local agent's runtime files do.
HOME_DIR = "home"


@dataclass(frozen=True)
class Resources:
    requests: dict[str, str] = field(default_factory=dict)  # cpu, memory
    limits: dict[str, str] = field(default_factory=dict)

    def to_manifest(self) -> dict[str, dict[str, str]]:
        return {k: dict(v) for k, v in (("requests", self.requests), ("limits", self.limits)) if v}


@dataclass(frozen=True)
class Settings:
    namespace: str
    image: str
    pvc: str
    mount_path: str = DEFAULT_MOUNT
    service_account: str | None = None
    image_pull_policy: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()  # Secret names, each passed whole as envFrom
    resources: Resources = field(default_factory=Resources)
    ttl_seconds_after_finished: int = DEFAULT_TTL
    active_deadline_seconds: int = DEFAULT_DEADLINE
    gateway_url: str | None = None  # how pods reach the gateway (a Service URL)
    kubeconfig: str | None = None  # None: in-cluster, else ~/.kube/config

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "launcher.kubernetes") -> Settings:
        """Settings from the resolved `launcher.kubernetes` table; ConfigError naming what is missing."""
        missing = [key for key in ("namespace", "image", "pvc") if not data.get(key)]
        if missing:
            raise ConfigError(
                f"{where} needs {', '.join(missing)}",
                "set the namespace the Jobs run in, the agent image, and the workspace PVC's name",
            )
        mount = str(data.get("mount_path") or DEFAULT_MOUNT)
        if not PurePosixPath(mount).is_absolute():
            raise ConfigError(f"{where}.mount_path must be an absolute path, not {mount!r}", "e.g. /workspace")
        res = data.get("resources") or {}
        return cls(
            namespace=str(data["namespace"]),
            image=str(data["image"]),
            pvc=str(data["pvc"]),
            mount_path=mount,
            service_account=_optional(data.get("service_account")),
            image_pull_policy=_optional(data.get("image_pull_policy")),
            env={str(k): str(v) for k, v in (data.get("env") or {}).items()},
            secrets=tuple(str(s) for s in data.get("secrets") or ()),
            resources=Resources(requests=_quantities(res.get("requests")), limits=_quantities(res.get("limits"))),
            ttl_seconds_after_finished=int(data.get("ttl_seconds_after_finished", DEFAULT_TTL)),
            active_deadline_seconds=int(data.get("active_deadline_seconds", DEFAULT_DEADLINE)),
            gateway_url=_optional(data.get("gateway_url")),
            kubeconfig=_optional(data.get("kubeconfig")),
        )

    @classmethod
    def from_repo(cls, repo: Repo) -> Settings:
        return cls.from_mapping(repo.config.resolved("launcher.kubernetes") or {})

    def check_state(self, state: Path) -> None:
        """The state folder must be on the workspace volume, as the control plane and pods see it."""
        if not state.is_relative_to(Path(self.mount_path)):
            raise ConfigError(
                f"the state folder {state} is not on the workspace volume ({self.mount_path})",
                f"run the control plane with the PVC mounted at {self.mount_path} and "
                f"FRACTA_HOME={self.mount_path}/.fracta: each Job's runner reads its launch there",
            )

    def home(self, state: Path, name: str) -> Path:
        """The runtime's HOME for agent `name`: on the volume, so a later Job resumes its session."""
        return state / "agents" / name / HOME_DIR


def _optional(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _quantities(table: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (table or {}).items() if v not in (None, "")}
