"""The Kubernetes Job launcher, with the official client, against kmock (a Kubernetes API stand-in
speaking the real REST shapes and watch streams) and the suite's real PostgreSQL store.

The tests play the cluster's part: the Job controller (they patch a Job's status) and the
kubelet (they run the Job's container command — fracta's real runner — as a local process, with
the Job's env, working folder and Secret-provided variables, and give the pod its log).
Against a real cluster when KUBECONFIG is set (test_a_real_cluster_runs_a_turn_as_a_job).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kube_mock import NAMESPACE, KubeMock
from lifecycle_helpers import wait_for

from fracta import agents, events, lifecycle, mailbox, peek, spawner, wake
from fracta import repo as repo_mod
from fracta.launchers.kubernetes import manifest
from fracta.launchers.kubernetes.api import Api
from fracta.launchers.kubernetes.launcher import KubernetesLauncher
from fracta.launchers.kubernetes.settings import Resources, Settings

DB_SECRET = "fracta-db"
URLS = spawner.Urls(control="http://fracta-control:8000", gateway="http://fracta-gateway:8765")


@pytest.fixture
def state_backend() -> str:
    return "postgres"  # Kubernetes mode keeps its state in PostgreSQL


@pytest.fixture
def kube() -> Iterator[KubeMock]:
    mock = KubeMock()
    try:
        yield mock
    finally:
        mock.stop()


def settings_for(root: Path) -> Settings:
    return Settings(
        namespace=NAMESPACE,
        image="registry.example/fracta-agent:1",
        pvc="fracta-workspace",
        mount_path=str(root),  # the volume, as the control plane and the pods mount it
        service_account="fracta-agent",
        image_pull_policy="IfNotPresent",
        env={"LOG_LEVEL": "info"},
        secrets=(DB_SECRET, "llm-keys"),
        resources=Resources(requests={"cpu": "500m", "memory": "1Gi"}, limits={"memory": "2Gi"}),
        ttl_seconds_after_finished=600,
        active_deadline_seconds=1800,
        gateway_url=URLS.gateway,
    )


@pytest.fixture
def launcher(initialized: repo_mod.Repo, kube: KubeMock) -> Iterator[KubernetesLauncher]:
    found = KubernetesLauncher(initialized, settings_for(initialized.root), Api(NAMESPACE, kube.configuration()))
    try:
        yield found
    finally:
        found.close()


def spawn(r: repo_mod.Repo, launcher: KubernetesLauncher, name: str, *args: str, runtime: str = "command") -> str:
    """Spawn `name` in a directory workspace on the volume and start its turn; returns its Job's name."""
    prompt = "do the task" if runtime != "command" else None
    req = lifecycle.SpawnRequest(
        name=name, runtime=runtime, prompt=prompt, args=args, workspace=r.root / "agents" / name
    )
    lifecycle.spawn(r, req)
    return start_turn(r, launcher, name)


def start_turn(r: repo_mod.Repo, launcher: KubernetesLauncher, name: str) -> str:
    assert spawner.schedule(r, URLS, launcher.start) == [name]
    return latest_job(launcher, name)


def latest_job(launcher: KubernetesLauncher, name: str) -> str:
    launch = (launcher.repo.agent_dir(name) / "launch.json").read_text()
    import json

    return manifest.job_name(name, json.loads(launch)["launch_id"])


def run_pod(job: dict[str, Any], secrets: dict[str, dict[str, str]]) -> subprocess.CompletedProcess[str]:
    """Run the Job's container as a kubelet would, here: its command, env, envFrom and workingDir."""
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {"PATH": os.environ["PATH"]}
    for ref in container.get("envFrom", []):
        env.update(secrets.get(ref["secretRef"]["name"], {}))
    env.update({e["name"]: e["value"] for e in container["env"]})
    command = list(container["command"])
    assert command[0] == "python3"
    command[0] = sys.executable  # the image's interpreter: here, the one fracta is installed in
    return subprocess.run(
        command, cwd=container["workingDir"], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def db_secret() -> dict[str, dict[str, str]]:
    return {DB_SECRET: {"FRACTA_DATABASE_URL": os.environ["FRACTA_DATABASE_URL"]}}


def event_names(r: repo_mod.Repo, name: str) -> list[str]:
    return [e.data["event"] for e in events.read(r) if e.data.get("agent") == name]


def test_a_spawn_creates_one_job_for_the_turn_with_the_volume_session_labels_and_limits(
    initialized: repo_mod.Repo, kube: KubeMock, launcher: KubernetesLauncher
) -> None:
    job_name = spawn(initialized, launcher, "alpha", "true")
    [job] = kube.jobs()
    assert job["metadata"]["name"] == job_name
    launch = job["metadata"]["labels"][manifest.LAUNCH]
    assert job["metadata"]["labels"][manifest.AGENT] == "alpha"
    spec = job["spec"]
    assert (spec["backoffLimit"], spec["ttlSecondsAfterFinished"], spec["activeDeadlineSeconds"]) == (0, 600, 1800)
    pod = spec["template"]["spec"]
    assert spec["template"]["metadata"]["labels"][manifest.LAUNCH] == launch
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "fracta-agent"
    assert pod["volumes"] == [{"name": "workspace", "persistentVolumeClaim": {"claimName": "fracta-workspace"}}]
    [container] = pod["containers"]
    state = str(initialized.state)
    assert container["command"] == ["python3", "-m", "fracta.runner", state, "alpha", launch]
    assert container["workingDir"] == str(initialized.root / "agents" / "alpha")
    assert container["volumeMounts"] == [{"name": "workspace", "mountPath": str(initialized.root)}]
    assert container["envFrom"] == [{"secretRef": {"name": DB_SECRET}}, {"secretRef": {"name": "llm-keys"}}]
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
    assert container["imagePullPolicy"] == "IfNotPresent"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["HOME"] == f"{state}/agents/alpha/home"
    assert env["FRACTA_HOME"] == state and env["LOG_LEVEL"] == "info"
    assert not any("TOKEN" in k or "DATABASE" in k for k in env)  # secrets stay in Secrets and the volume
    assert agents.load(initialized, "alpha").status == agents.Status.STARTING
    assert "agent.starting" in event_names(initialized, "alpha")


def test_the_pods_runner_records_its_run_and_peek_reads_the_pod_log(
    initialized: repo_mod.Repo, kube: KubeMock, launcher: KubernetesLauncher
) -> None:
    launcher.follow()
    job_name = spawn(initialized, launcher, "beta", "sh", "-c", "echo hello from the pod")
    kube.set_status(job_name, {"active": 1})
    ran = run_pod(kube.job(job_name), db_secret())
    assert ran.returncode == 0, ran.stderr
    assert agents.load(initialized, "beta").status == agents.Status.DONE  # the runner recorded it itself
    kube.set_status(job_name, {"active": 0, "succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})
    kube.add_pod(job_name, ran.stdout, terminated={"exitCode": 0, "reason": "Completed"})
    lines = launcher.pod_output("beta")
    assert any("hello from the pod" in line for line in lines)
    # Where the volume's output file is missing, peek reads the pod log, mirrored into it.
    output = initialized.agent_dir("beta") / "output.jsonl"
    output.unlink()
    assert launcher.output(initialized, "beta") == output
    seen = peek.peek(initialized, "beta")
    assert [e.text for e in seen.events if e.kind == "line"] == ["hello from the pod"]
    assert event_names(initialized, "beta")[-2:] == ["agent.started", "agent.exited"]
    assert agents.load(initialized, "beta").status == agents.Status.DONE  # the watch left it as recorded


@pytest.mark.parametrize(
    ("status", "settled", "why"),
    [
        (
            {"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]},
            agents.Status.FAILED,
            "DeadlineExceeded",
        ),
        (
            {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]},
            agents.Status.LOST,
            "recorded no exit",
        ),
    ],
)
def test_the_watch_settles_a_turn_whose_runner_could_not_record_its_end(
    initialized: repo_mod.Repo,
    kube: KubeMock,
    launcher: KubernetesLauncher,
    status: dict[str, Any],
    settled: agents.Status,
    why: str,
) -> None:
    watch = launcher.follow()
    job_name = spawn(initialized, launcher, "gamma", "true")
    wait_for("the watch to list", lambda: watch.lists >= 1)
    agents.update(initialized, "gamma", status=agents.Status.RUNNING)  # as the pod's runner does at start
    kube.set_status(job_name, {"active": 1})
    if settled == agents.Status.FAILED:
        kube.add_pod(job_name, "", terminated={"exitCode": 137, "reason": "OOMKilled"})
    kube.set_status(job_name, {"active": 0, **status})
    wait_for("the watch to settle gamma", lambda: agents.load(initialized, "gamma").status == settled)
    agent = agents.load(initialized, "gamma")
    assert why in (agent.error or "") and job_name in (agent.error or "")
    if settled == agents.Status.FAILED:
        assert "OOMKilled (exit code 137)" in (agent.error or "")
        assert event_names(initialized, "gamma")[-1] == "agent.exited"
    else:
        assert event_names(initialized, "gamma")[-1] == "agent.lost"


def test_a_job_deleted_while_its_turn_runs_settles_the_agent_lost(
    initialized: repo_mod.Repo, kube: KubeMock, launcher: KubernetesLauncher
) -> None:
    watch = launcher.follow()
    job_name = spawn(initialized, launcher, "delta", "true")
    wait_for("the watch to list", lambda: watch.lists >= 1)
    agents.update(initialized, "delta", status=agents.Status.RUNNING)
    kube.batch.delete_namespaced_job(job_name, NAMESPACE, _preload_content=False)  # someone's kubectl
    wait_for("delta to be lost", lambda: agents.load(initialized, "delta").status == agents.Status.LOST)
    assert "was deleted before it finished" in (agents.load(initialized, "delta").error or "")


def test_a_wake_is_a_new_job_that_resumes_the_session_kept_on_the_volume(
    initialized: repo_mod.Repo, kube: KubeMock, launcher: KubernetesLauncher
) -> None:
    # Claude's adapter builds the launch; its binary is only named here (no pod runs in this test).
    config = initialized.config_path
    binary = sys.executable
    runtimes = f"  agent_runtimes: {{claude: {{binary: {binary}}}}}"
    config.write_text(config.read_text().replace("  agent_runtimes: {}", runtimes))  # read at first use
    first = spawn(initialized, launcher, "epsilon", runtime="claude")
    # The first turn ends as its runner records it: idle, with the session it started.
    agents.update(initialized, "epsilon", status=agents.Status.IDLE, session_id="sess-42")
    kube.set_status(first, {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})
    sent = mailbox.send(initialized, "chessmaster", "epsilon", "one more thing")
    assert wake.after_send(initialized, sent, kick=lambda: None) == ["epsilon"]
    second = start_turn(initialized, launcher, "epsilon")
    assert second != first
    jobs = {j["metadata"]["name"]: j for j in kube.jobs()}
    assert set(jobs) == {first, second}
    one, two = (jobs[n]["spec"]["template"]["spec"]["containers"][0] for n in (first, second))
    env_one, env_two = ({e["name"]: e["value"] for e in c["env"]} for c in (one, two))
    assert env_one["HOME"] == env_two["HOME"] == str(initialized.state / "agents" / "epsilon" / "home")
    assert one["workingDir"] == two["workingDir"]
    assert one["command"][-1] != two["command"][-1]  # a launch id per turn
    import json

    argv = json.loads((initialized.agent_dir("epsilon") / "launch.json").read_text())["argv"]
    assert argv[argv.index("--resume") + 1] == "sess-42"
    assert "agent.woken" in event_names(initialized, "epsilon")


def test_kill_deletes_the_agents_jobs_with_foreground_propagation(
    initialized: repo_mod.Repo, kube: KubeMock, launcher: KubernetesLauncher
) -> None:
    job_name = spawn(initialized, launcher, "zeta", "true")
    kube.set_status(job_name, {"active": 1})
    agent = agents.load(initialized, "zeta")
    assert launcher.alive(initialized, agent) is True
    assert launcher.stop(initialized, agent, grace=5) is True
    [delete] = kube.requests("DELETE", f"/jobs/{job_name}")
    assert delete.data["propagationPolicy"] == "Foreground"
    assert kube.jobs() == []
    assert launcher.stop(initialized, agent, grace=5) is False  # nothing left to delete
    home = initialized.state / "agents" / "zeta" / "home"
    assert home.is_dir()  # the session's HOME on the volume, made at the start
    lifecycle.kill(initialized, "zeta", force=True)
    assert not home.exists()  # removed with the agent's folder: no session left behind on the volume


def test_the_watch_lists_again_when_its_version_is_gone(
    initialized: repo_mod.Repo, kube: KubeMock, launcher: KubernetesLauncher
) -> None:
    expired = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}}

    def once(handler: Any) -> None:
        handler["get /apis/batch/v1/namespaces/fracta-agents/jobs", {"watch": "true"}][:1] << expired

    kube.call(once)
    watch = launcher.follow()
    wait_for("a second list after 410 Gone", lambda: watch.lists >= 2)
    job_name = spawn(initialized, launcher, "eta", "true")  # the watch after the re-list still follows
    agents.update(initialized, "eta", status=agents.Status.RUNNING)
    kube.set_status(job_name, {"failed": 1, "conditions": [{"type": "Failed", "status": "True"}]})
    wait_for("eta to be failed", lambda: agents.load(initialized, "eta").status == agents.Status.FAILED)


@pytest.mark.skipif(not os.environ.get("KUBECONFIG"), reason="no real cluster here: set KUBECONFIG to run it")
def test_a_real_cluster_runs_a_turn_as_a_job(initialized: repo_mod.Repo, tmp_path: Path) -> None:
    """Creates a Job in FRACTA_TEST_NAMESPACE (default: default) and deletes it, foreground."""
    from fracta.launchers.kubernetes.api import configuration

    namespace = os.environ.get("FRACTA_TEST_NAMESPACE", "default")
    settings = dataclasses.replace(
        settings_for(initialized.root),
        namespace=namespace,
        kubeconfig=os.environ["KUBECONFIG"],
        secrets=(),
        service_account=None,
    )
    real = KubernetesLauncher(initialized, settings, Api(namespace, configuration(settings)))
    try:
        watch = real.follow()
        job_name = spawn(initialized, real, "cluster-probe", "true")
        wait_for(
            "the Job in a list", lambda: any(j["metadata"]["name"] == job_name for j in real.jobs("cluster-probe"))
        )
        assert watch.lists >= 1
        probe = agents.load(initialized, "cluster-probe")
        real.stop(initialized, probe, grace=5)  # it may have failed already (no such image): either way, gone
        assert real.jobs("cluster-probe") == []
    finally:
        real.close()
