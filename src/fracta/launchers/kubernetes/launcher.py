"""The Kubernetes Job launcher (launchers.base.Launcher): one Job per agent turn, followed by watch.

start = create the turn's Job (a wake is a new Job: the launch the spawner built resumes the
session, whose state is on the volume); stop = delete the agent's Jobs with foreground
propagation, and wait until they are gone (their pods go first); alive = the turn's Job still
runs; begin = the watch that settles turns whose runner could not record their end; output =
the output file on the volume, or, missing there, the pod log of the agent's latest turn.
Building one is cheap (no client, no request): `fracta kill` and `peek` build one on their way.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from ... import agents, atomic, runner
from ...errors import ClusterError
from ...records import Agent
from ...repo import Repo
from ..base import KUBERNETES, Started
from . import manifest, settle, status
from .api import Api, configuration
from .settings import Settings
from .status import Turn
from .watch import JobWatch

log = logging.getLogger("fracta.launchers.kubernetes")


class KubernetesLauncher:
    """Runs agents' turns as Jobs in `settings.namespace`, for the fracta whose state is `repo.state`."""

    kind = KUBERNETES
    STOP_WAIT = 120.0  # seconds past the grace a foreground deletion may take (pods terminating)

    def __init__(self, repo: Repo, settings: Settings | None = None, api: Api | None = None) -> None:
        self.repo = repo
        self.settings = settings if settings is not None else Settings.from_repo(repo)
        self.settings.check_state(repo.state)
        self._api = api
        self.selector = manifest.selector(repo.state)
        self._watch: JobWatch | None = None
        self._lock = threading.Lock()

    @property
    def api(self) -> Api:
        """The API client, made at first use (reading a kubeconfig or the pod's ServiceAccount)."""
        with self._lock:
            if self._api is None:
                self._api = Api(self.settings.namespace, configuration(self.settings))
            return self._api

    def manifest(self, name: str, launch_id: str) -> dict[str, Any]:
        """The Job for `name`'s turn `launch_id`, in the agent's workspace on the volume."""
        agent = agents.load(self.repo, name)
        workspace = Path(agent.workspace) if agent.workspace else self.repo.root
        return manifest.job(self.settings, self.repo.state, name, launch_id, workspace)

    # --- the Launcher protocol -------------------------------------------------------------------

    def start(self, repo: Repo, name: str, launch_id: str) -> Started:
        """Create the Job for the turn the spawner just prepared (its launch file). No local pid:
        the Job is found again by the agent's name and launch id."""
        job = self.manifest(name, launch_id)
        # The session's HOME exists before the pod does: a runtime may refuse a HOME it cannot find.
        atomic.ensure_dirs(self.settings.home(self.repo.state, name), mode=0o700)
        self.api.create_job(job)
        return Started(pid=None)

    def stop(self, repo: Repo, agent: Agent, grace: float) -> bool:
        """Delete every Job of the agent, foreground (Kubernetes removes its pods first), and wait
        until none is left. Returns True if one of them still ran."""
        ran = False
        for job in self.jobs(agent.name):
            turn = status.turn(job)
            if self.api.delete_job(str(job["metadata"]["name"])) and turn is not None and not turn.finished:
                ran = True
        deadline = time.monotonic() + grace + self.STOP_WAIT
        while left := self.jobs(agent.name):
            if time.monotonic() > deadline:
                names = ", ".join(str(j["metadata"]["name"]) for j in left)
                raise ClusterError(
                    f"the Jobs of {agent.name!r} are still being deleted: {names}",
                    f"see kubectl -n {self.settings.namespace} describe job {left[0]['metadata']['name']}",
                )
            time.sleep(0.5)
        return ran

    def alive(self, repo: Repo, agent: Agent) -> bool | None:
        """Whether the Job of the agent's current turn still runs; None before it is known (being
        created). The watch settles turns as they end; this answers the reaper's sweeps."""
        launch, written = settle.current_launch(repo, agent.name)
        if launch is None:
            return None
        turns = [t for t in map(status.turn, self.jobs(agent.name)) if t is not None and t.launch_id == launch]
        if not turns:
            return None if time.time() - written < settle.CREATE_GRACE else False
        return not turns[0].finished

    def output(self, repo: Repo, name: str) -> Path:
        """The runner's output file on the volume; missing there (a volume not mounted here), the
        latest turn's pod log, mirrored into it."""
        path = repo.agent_dir(name) / runner.OUTPUT_FILE
        if path.exists():
            return path
        with contextlib.suppress(ClusterError):
            lines = self.pod_output(name)
            if lines and repo.agent_dir(name).is_dir():
                atomic.write_text(path, "".join(line + "\n" for line in lines))
        return path

    def begin(self) -> None:
        """Start following this fracta's Jobs (idempotent)."""
        self.follow()

    def close(self) -> None:
        with self._lock:
            watch, self._watch = self._watch, None
            api, self._api = self._api, None
        if watch is not None:
            watch.stop()
        if api is not None:
            api.close()

    # --- Jobs, pods and the watch ---------------------------------------------------------------

    def jobs(self, name: str) -> list[dict[str, Any]]:
        """The Jobs of agent `name` (the selector, checked here again: a list may ignore it)."""
        found, _ = self.api.list_jobs(manifest.selector(self.repo.state, name))
        return [j for j in found if ((j.get("metadata") or {}).get("labels") or {}).get(manifest.AGENT) == name]

    def pod_output(self, name: str, tail: int | None = None) -> list[str]:
        """The output records of `name`'s latest turn, from its pod's log (one JSON record a line)."""
        launch, _ = settle.current_launch(self.repo, name)
        if launch is None:
            return []
        pods = self.api.pods(manifest.job_name(name, launch))
        if not pods:
            return []
        text = self.api.pod_log(str(pods[0]["metadata"]["name"]), tail)
        return [line for line in text.splitlines() if _record(line)]

    def follow(self) -> JobWatch:
        """The watch that settles turns (started once); `close` stops it."""
        api = self.api
        with self._lock:
            if self._watch is None:
                self._watch = JobWatch(api, self.selector, self._on_event, self._on_list)
                self._watch.start()
            return self._watch

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


def _record(line: str) -> bool:
    """A line of the pod log that is an output record (the runner's own log lines are not)."""
    if not line.startswith("{"):
        return False
    try:
        return "stream" in json.loads(line)
    except ValueError:
        return False
