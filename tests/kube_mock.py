"""A Kubernetes API server stand-in for the tests: kmock's KubernetesEmulator (PyPI, by kopf's
author) on a free port on 127.0.0.1, run in a thread with its own event loop so that the
synchronous official client (and fracta's watch thread) talk to it over real HTTP.

It stores what is created, patched and deleted, serves lists and watch streams, and keeps every
request for assertions. Like any stand-in, it is simpler than a real API server: it ignores label
selectors and resource versions (a watch replays every object as ADDED), and it has no Job or
Pod controller — the tests play the controller: they patch a Job's status and add its pod.

Import from test files: `from kube_mock import KubeMock`.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import kmock
import kubernetes.client

NAMESPACE = "fracta-agents"
JOBS = "batch/v1/jobs"
PODS = "v1/pods"


class KubeMock:
    """kmock serving in a background thread; `stop` ends it."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True, name="kmock")
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            raise RuntimeError(f"kmock did not start: {self._error!r}")
        self.client = kubernetes.client.ApiClient(self.configuration())
        self.batch = kubernetes.client.BatchV1Api(self.client)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # reported by __init__, or ends the thread at stop
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        async with kmock.KubernetesEmulator() as handler, kmock.Server(handler) as server:
            self.handler, self.url = handler, str(server.url).rstrip("/")
            handler.resources[JOBS] = kmock.ResourceInfo(namespaced=True, kind="Job", subresources={"status"})
            handler.resources[PODS] = kmock.ResourceInfo(namespaced=True, kind="Pod", subresources={"log"})
            self._stopping = asyncio.Event()
            self._ready.set()
            await self._stopping.wait()

    def stop(self) -> None:
        self.client.close()
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)
        self._loop.close()

    def configuration(self) -> kubernetes.client.Configuration:
        return kubernetes.client.Configuration(host=self.url)

    def call(self, fn: Any) -> Any:
        """Run `fn(handler)` on the server's loop (the handler is not thread-safe)."""

        async def run() -> Any:
            return fn(self.handler)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(30)

    # --- what a controller would do ---------------------------------------------------------------

    def jobs(self) -> list[dict[str, Any]]:
        """The Jobs the server holds now (not deleted)."""
        resp = self.batch.list_namespaced_job(NAMESPACE, _preload_content=False)
        return list(json.loads(resp.data)["items"])

    def job(self, name: str) -> dict[str, Any]:
        return dict(json.loads(self.batch.read_namespaced_job(name, NAMESPACE, _preload_content=False).data))

    def set_status(self, job: str, status: dict[str, Any]) -> None:
        """Patch the Job's status as the Job controller would (a MODIFIED event on every watch)."""
        self.batch.patch_namespaced_job_status(job, NAMESPACE, {"status": status}, _preload_content=False)

    def add_pod(self, job: str, log: str, terminated: dict[str, Any] | None = None) -> str:
        """Add the Job's pod (labelled job-name=<job>) with `log` as its log; returns its name."""
        pod = f"{job}-x1"
        state = {"terminated": terminated} if terminated else {"running": {}}
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pod, "namespace": NAMESPACE, "labels": {"job-name": job}},
            "spec": {"containers": [{"name": "agent", "image": "fracta-agent"}]},
            "status": {
                "containerStatuses": [
                    {
                        "name": "agent",
                        "image": "fracta-agent",
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "state": state,
                    }
                ]
            },
        }
        core = kubernetes.client.CoreV1Api(self.client)
        core.create_namespaced_pod(NAMESPACE, body, _preload_content=False)

        def react(handler: Any) -> None:
            handler[f"get /api/v1/namespaces/{NAMESPACE}/pods/{pod}/log"] << log.encode()

        self.call(react)
        return pod

    def requests(self, method: str, path_part: str) -> list[Any]:
        """The requests seen with `method` whose path contains `path_part`."""
        return self.call(lambda h: [r for r in h if r.method.value == method.upper() and path_part in str(r.url)])
