"""The batch/v1 Job for one agent turn, as plain data (no client import: built and tested cheaply).

One Job per turn: the container runs fracta's runner for the agent's launch, which reads the
launch (argv, env, the agent's token and credentials: never in the Job spec) from the state
folder on the workspace volume, runs the runtime CLI in the agent's DirectoryWorkspace, and
records its start and exit in the store (PostgreSQL: FRACTA_DATABASE_URL from a Secret).
HOME is the agent's own folder on the volume, so the runtime's session survives the pod and a
wake (a new Job, a new launch id) resumes it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from .settings import Settings

# Labels select this fracta's Jobs (the watch) and one agent's (kill, logs).
MANAGED_BY = "app.kubernetes.io/managed-by"
INSTANCE = "fracta.dev/instance"  # a hash of the state folder: several fractas can share a namespace
AGENT = "fracta.dev/agent"
LAUNCH = "fracta.dev/launch"  # the launch id: one per turn, as the runner's launch.json names it
JOB_NAME = "job-name"  # set by the Job controller on its pods
CONTAINER = "agent"
VOLUME = "workspace"
PYTHON = "python3"  # the image's interpreter, with fracta installed (the scaffold's Dockerfile)


def instance(state: Path) -> str:
    """A label value naming one fracta (its state folder): 16 hex digits."""
    return hashlib.sha256(str(state).encode()).hexdigest()[:16]


def job_name(agent: str, launch_id: str) -> str:
    """`fracta-<agent>-<launch>`: agent names are RFC 1123 labels of 40 at most, so it fits 63."""
    return f"fracta-{agent}-{launch_id[:8]}"


def selector(state: Path, agent: str | None = None) -> str:
    """The label selector for this fracta's Jobs (or one agent's)."""
    parts = [f"{MANAGED_BY}=fracta", f"{INSTANCE}={instance(state)}"]
    return ",".join([*parts, f"{AGENT}={agent}"] if agent else parts)


def labels(state: Path, agent: str, launch_id: str) -> dict[str, str]:
    return {MANAGED_BY: "fracta", INSTANCE: instance(state), AGENT: agent, LAUNCH: launch_id}


def job(settings: Settings, state: Path, agent: str, launch_id: str, workspace: Path) -> dict[str, Any]:
    """The Job manifest for `agent`'s turn `launch_id`, working in `workspace`."""
    marks = labels(state, agent, launch_id)
    home = settings.home(state, agent)
    env = {
        **settings.env,
        "FRACTA_HOME": str(state),
        "FRACTA_LAUNCHER": "kubernetes",  # the runner then records no pid and echoes output to the pod log
        "HOME": str(home),
        # OpenCode keeps its sessions under the XDG data folder: pin it under HOME, whatever the image says.
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "PYTHONUNBUFFERED": "1",  # the runner's own lines reach the pod log as they happen
    }
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": settings.image,
        "command": [PYTHON, "-m", "fracta.runner", str(state), agent, launch_id],
        "workingDir": str(workspace),
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "volumeMounts": [{"name": VOLUME, "mountPath": settings.mount_path}],
    }
    if settings.secrets:
        container["envFrom"] = [{"secretRef": {"name": name}} for name in settings.secrets]
    if settings.image_pull_policy:
        container["imagePullPolicy"] = settings.image_pull_policy
    if resources := settings.resources.to_manifest():
        container["resources"] = resources
    pod: dict[str, Any] = {
        "restartPolicy": "Never",  # a turn is a run that ends; a retry would replay its tool calls
        "containers": [container],
        "volumes": [{"name": VOLUME, "persistentVolumeClaim": {"claimName": settings.pvc}}],
    }
    if settings.service_account:
        pod["serviceAccountName"] = settings.service_account
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name(agent, launch_id), "namespace": settings.namespace, "labels": marks},
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": settings.ttl_seconds_after_finished,
            "activeDeadlineSeconds": settings.active_deadline_seconds,
            "template": {"metadata": {"labels": marks}, "spec": pod},
        },
    }
