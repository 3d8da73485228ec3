"""The Kubernetes Job launcher: one Job per agent turn, followed by watch.

start = create the turn's Job (a wake is a new Job: the launch the spawner built resumes the
session, whose state is on the volume); stop = delete the agent's Jobs with foreground
propagation (its pods go before the Job does); the watch settles turns whose runner could not
record their end; output = the pod log of the agent's latest turn.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
from pathlib import Path
from typing import Any

from ... import agents, atomic
from ...errors import AgentNotFound, ClusterError
from ...repo import Repo
from . import manifest, settle, status
from .api import Api, configuration
from .settings import Settings
from .status import Turn
from .watch import JobWatch

log = logging.getLogger("fracta.launchers.kubernetes")


class KubernetesLauncher:
    """Runs agents' turns as Jobs in `settings.namespace`, for the fracta whose state is `repo.state`."""

    kind = "kubernetes"

    def __init__(self, repo: Repo, settings: Settings, api: Api | None = None) -> None:
        settings.check_state(repo.state)
        self.repo, self.settings = repo, settings
        self.api = api if api is not None else Api(settings.namespace, configuration(settings))
        self.selector = manifest.selector(repo.state)
        self._watch: JobWatch | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_repo(cls, repo: Repo) -> KubernetesLauncher:
        return cls(repo, Settings.from_repo(repo))

    def manifest(self, name: str, launch_id: str) -> dict[str, Any]:
        """The Job for `name`'s turn `launch_id`, in the agent's workspace on the volume."""
        agent = agents.load(self.repo, name)
        workspace = Path(agent.workspace) if agent.workspace else self.repo.root
        return manifest.job(self.settings, self.repo.state, name, launch_id, workspace)

    def start(self, name: str, launch_id: str) -> str:
        """Create the Job for the turn the spawner just prepared (launch.json); returns its name."""
        job = self.manifest(name, launch_id)
        # The session's HOME exists before the pod does: a runtime may refuse a HOME it cannot find.
        atomic.ensure_dirs(self.settings.home(self.repo.state, name), mode=0o700)
        created = self.api.create_job(job)
        return str((created.get("metadata") or {}).get("name") or job["metadata"]["name"])

    def launch(self, repo: Repo, name: str, launch_id: str) -> tuple[int | None, int | None]:
        """The spawner's LaunchRunner: start the turn's Job. No local pid: the Job is followed by watch."""
        self.start(name, launch_id)
        return None, None

    def jobs(self, name: str) -> list[dict[str, Any]]:
        """The Jobs of agent `name` (the selector, checked here again: a list may ignore it)."""
        found, _ = self.api.list_jobs(manifest.selector(self.repo.state, name))
        return [j for j in found if ((j.get("metadata") or {}).get("labels") or {}).get(manifest.AGENT) == name]

    def stop(self, name: str) -> bool:
        """Delete every Job of `name`, foreground: Kubernetes stops its pods before the Job goes.
        Returns True if a Job still ran."""
        ran = False
        for job in self.jobs(name):
            turn = status.turn(job)
            if self.api.delete_job(str(job["metadata"]["name"])) and turn is not None and not turn.finished:
                ran = True
        return ran

    def forget(self, name: str) -> None:
        """Remove what the launcher kept for `name` (the session's HOME), once the agent is removed."""
        shutil.rmtree(self.settings.home(self.repo.state, name), ignore_errors=True)

    def output(self, name: str, tail: int | None = None) -> list[str]:
        """The output records of `name`'s latest turn, from its pod's log (one JSON record a line)."""
        launch, _ = settle.current_launch(self.repo, name)
        if launch is None:
            raise AgentNotFound(f"agent {name!r} has not been started", "wait for it to start")
        pods = self.api.pods(manifest.job_name(name, launch))
        if not pods:
            return []
        text = self.api.pod_log(str(pods[0]["metadata"]["name"]), tail)
        return [line for line in text.splitlines() if line.startswith("{")]

    # --- following the Jobs ----------------------------------------------------------------------

    def follow(self) -> JobWatch:
        """Start the watch that settles turns (idempotent); the control plane stops it at exit."""
        with self._lock:
            if self._watch is None:
                self._watch = JobWatch(self.api, self.selector, self._on_event, self._on_list)
                self._watch.start()
            return self._watch

    def close(self) -> None:
        with self._lock:
            watch, self._watch = self._watch, None
        if watch is not None:
            watch.stop()
        self.api.close()

    def _on_event(self, kind: str, job: dict[str, Any]) -> None:
        turn = status.turn(job)
        if turn is None:
            return
        settled = settle.settle(self.repo, turn, gone=kind == "DELETED", why=self._why)
        if settled:
            extra = {"event": "k8s.settled", "agent": turn.agent, "job": turn.job, "status": settled}
            log.info("settled an agent from its Job's status", extra=extra)

    def _on_list(self, jobs: list[dict[str, Any]]) -> None:
        settle.resync(self.repo, jobs, self._why)

    def _why(self, turn: Turn) -> str | None:
        """The pod's account of a failed turn (OOMKilled, exit code): best effort, one API call."""
        with contextlib.suppress(ClusterError):
            return status.pod_reason(self.api.pods(turn.job))
        return None
