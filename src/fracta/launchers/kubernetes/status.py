"""What a Job's status says about its turn, read from the raw object: pure functions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import manifest

PENDING, RUNNING, SUCCEEDED, FAILED = "pending", "running", "succeeded", "failed"


@dataclass(frozen=True)
class Turn:
    """One Job as the launcher sees it: whose turn, and how it stands."""

    job: str
    agent: str
    launch_id: str
    phase: str  # pending | running | succeeded | failed
    reason: str | None = None  # why it failed, from the Job's Failed condition

    @property
    def finished(self) -> bool:
        return self.phase in (SUCCEEDED, FAILED)


def turn(job: dict[str, Any]) -> Turn | None:
    """The turn a Job runs, or None for a Job that is not an agent turn of fracta's."""
    meta = job.get("metadata") or {}
    labels = meta.get("labels") or {}
    agent, launch = labels.get(manifest.AGENT), labels.get(manifest.LAUNCH)
    if not agent or not launch or not meta.get("name"):
        return None
    phase, reason = _phase(job.get("status") or {})
    return Turn(job=str(meta["name"]), agent=str(agent), launch_id=str(launch), phase=phase, reason=reason)


def _phase(status: dict[str, Any]) -> tuple[str, str | None]:
    for condition in status.get("conditions") or []:
        if str(condition.get("status")) != "True":
            continue
        kind = condition.get("type")
        if kind in ("Complete", "SuccessCriteriaMet"):
            return SUCCEEDED, None
        if kind in ("Failed", "FailureTarget"):
            why = ": ".join(str(p) for p in (condition.get("reason"), condition.get("message")) if p)
            return FAILED, why or None
    # Without conditions (an older API, or one that has not set them yet): the pod counts.
    if status.get("succeeded"):
        return SUCCEEDED, None
    if status.get("failed"):
        return FAILED, None
    return (RUNNING if status.get("active") or status.get("ready") else PENDING), None


def pod_reason(pods: list[dict[str, Any]]) -> str | None:
    """Why the agent's container ended, from its pod (OOMKilled, Error with exit code, Evicted)."""
    for pod in pods:
        status = pod.get("status") or {}
        for container in status.get("containerStatuses") or []:
            ended = (container.get("state") or {}).get("terminated") or {}
            if ended:
                code = ended.get("exitCode")
                return f"{ended.get('reason') or 'terminated'} (exit code {code})"
        if status.get("reason"):
            return ": ".join(str(p) for p in (status.get("reason"), status.get("message")) if p)
    return None
