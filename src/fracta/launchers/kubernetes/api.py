"""The few Kubernetes API calls the launcher makes, over the official client, with raw JSON.

The only module that imports `kubernetes` (about half a second: never on the CLI's fast paths).
Objects are read as plain dicts (`_preload_content=False`): the launcher needs a handful of
fields, and the watch stream is read line by line so that `close` can end it at once.
Every failure becomes a ClusterError saying what was asked and what the API answered.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import kubernetes.client
import kubernetes.config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from ...errors import ClusterError
from .settings import Settings

CONNECT_TIMEOUT = 10.0  # seconds to reach the API server
CALL_TIMEOUT = 30.0  # seconds for one non-streaming call
GONE = 410  # a watch's resourceVersion is too old: list again


class Gone(Exception):
    """The watch's resourceVersion has expired (HTTP 410): list again, then watch from there."""


def configuration(settings: Settings) -> kubernetes.client.Configuration:
    """The client configuration: `kubeconfig` if set, else in-cluster, else ~/.kube/config."""
    config = kubernetes.client.Configuration()
    try:
        if settings.kubeconfig:
            kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=settings.kubeconfig, client_configuration=config
            )
        else:
            try:
                kubernetes.config.load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
            except kubernetes.config.ConfigException:
                kubernetes.config.load_kube_config(client_configuration=config)  # type: ignore[no-untyped-call]
    except (kubernetes.config.ConfigException, OSError) as exc:
        raise ClusterError(
            f"cannot find how to reach the Kubernetes API: {exc}",
            "run the control plane in the cluster (its ServiceAccount), or set launcher.kubernetes.kubeconfig",
        ) from None
    return config


class Api:
    """batch/v1 Jobs and core/v1 Pod logs in one namespace."""

    def __init__(self, namespace: str, config: kubernetes.client.Configuration) -> None:
        self.namespace = namespace
        self.client = kubernetes.client.ApiClient(config)
        # Typed for its models; fracta sends and reads raw JSON (dicts in, _preload_content=False out).
        self.batch: Any = kubernetes.client.BatchV1Api(self.client)
        self.core: Any = kubernetes.client.CoreV1Api(self.client)

    def close(self) -> None:
        self.client.close()  # type: ignore[no-untyped-call]

    def create_job(self, manifest: dict[str, Any]) -> dict[str, Any]:
        with _asking(f"create Job {manifest['metadata']['name']}"):
            resp = self.batch.create_namespaced_job(
                self.namespace, manifest, _preload_content=False, _request_timeout=(CONNECT_TIMEOUT, CALL_TIMEOUT)
            )
            return _json(resp)

    def delete_job(self, name: str) -> bool:
        """Delete Job `name` and, before it goes, its pods (foreground); False if it was gone already."""
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Foreground"}
        try:
            with _asking(f"delete Job {name}"):
                self.batch.delete_namespaced_job(
                    name, self.namespace, body=body, _preload_content=False, _request_timeout=CALL_TIMEOUT
                )
        except ClusterError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def list_jobs(self, selector: str) -> tuple[list[dict[str, Any]], str | None]:
        """The Jobs matching `selector`, and the list's resourceVersion to watch from."""
        with _asking("list Jobs"):
            resp = self.batch.list_namespaced_job(
                self.namespace, label_selector=selector, _preload_content=False, _request_timeout=CALL_TIMEOUT
            )
            data = _json(resp)
        return list(data.get("items") or []), (data.get("metadata") or {}).get("resourceVersion")

    def watch_jobs(self, selector: str, version: str | None, timeout: float) -> Stream:
        """A watch of the Jobs matching `selector` from `version`; the server ends it after `timeout`."""
        with _asking("watch Jobs"):
            resp = self.batch.list_namespaced_job(
                self.namespace,
                label_selector=selector,
                watch=True,
                allow_watch_bookmarks=True,
                resource_version=version or None,
                timeout_seconds=int(timeout),
                _preload_content=False,
                _request_timeout=(CONNECT_TIMEOUT, timeout + CALL_TIMEOUT),
            )
        return Stream(resp)

    def pods(self, job: str) -> list[dict[str, Any]]:
        """The pods of Job `job` (the Job controller labels them job-name=<job>)."""
        with _asking(f"list the pods of Job {job}"):
            resp = self.core.list_namespaced_pod(
                self.namespace, label_selector=f"job-name={job}", _preload_content=False, _request_timeout=CALL_TIMEOUT
            )
            items = _json(resp).get("items") or []
        # Checked here again: the selector is the server's to apply, and a stand-in may not.
        return [p for p in items if ((p.get("metadata") or {}).get("labels") or {}).get("job-name") == job]

    def pod_log(self, pod: str, tail: int | None = None) -> str:
        with _asking(f"read the log of pod {pod}"):
            resp = self.core.read_namespaced_pod_log(
                pod, self.namespace, tail_lines=tail, _preload_content=False, _request_timeout=CALL_TIMEOUT
            )
            return bytes(resp.data).decode("utf-8", errors="replace")


class Stream:
    """A watch response read one event a line; `close` (from any thread) ends the iteration."""

    def __init__(self, resp: Any) -> None:
        self.resp = resp

    def __iter__(self) -> Iterator[dict[str, Any]]:
        buffer = b""
        try:
            for chunk in self.resp.stream(amt=None, decode_content=False):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield _event(json.loads(line))
            if buffer.strip():  # the last event, when the server ends the stream without a newline
                yield _event(json.loads(buffer))
        except (OSError, HTTPError, AttributeError, ValueError) as exc:
            if self.resp.closed:
                return  # closed by `close`: the watch was stopped
            raise ClusterError(f"the Job watch broke off: {exc}", "it reconnects") from None
        finally:
            self.resp.release_conn()

    def close(self) -> None:
        # shutdown() interrupts a read blocked in another thread (urllib3 2.3+); close() alone may not.
        shutdown = getattr(self.resp, "shutdown", None)
        with contextlib.suppress(ValueError, RuntimeError, OSError):  # released already: nothing blocks on it
            if shutdown is not None:
                shutdown()
            self.resp.close()


def _event(event: dict[str, Any]) -> dict[str, Any]:
    if event.get("type") == "ERROR":
        status = event.get("object") or {}
        if status.get("code") == GONE:
            raise Gone(str(status.get("message") or "resource version too old"))
        raise ClusterError(f"the Job watch reported an error: {status.get('message') or status}", "it reconnects")
    return event


def _json(resp: Any) -> dict[str, Any]:
    data = json.loads(resp.data or b"{}")
    return data if isinstance(data, dict) else {}


class _asking:
    """Turn the client's failures into ClusterError (with the HTTP status, for callers that care)."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc is None or isinstance(exc, (ClusterError, Gone)):
            return
        if isinstance(exc, ApiException):
            if exc.status == GONE:
                raise Gone(str(exc.reason)) from None
            raise ClusterError(
                f"Kubernetes refused to {self.what}: {exc.status} {exc.reason}: {_message(exc)}",
                "check the namespace, and that fracta's ServiceAccount may create, watch and delete Jobs "
                "and read pod logs",
                status=exc.status,
            ) from None
        if isinstance(exc, (OSError, ValueError, HTTPError)):
            raise ClusterError(
                f"cannot reach the Kubernetes API to {self.what}: {exc}", "check the API server's address"
            ) from None


def _message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or b"{}")
    except ValueError:
        return str(exc.body or "")[:200]
    return str(body.get("message") or "")[:500] if isinstance(body, dict) else ""
