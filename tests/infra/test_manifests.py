"""The cluster configs under infra/ parse and hang together: k8s kinds and fields, cross-references, templates.

No cluster here, so this checks what a reviewer would: every YAML parses, every Kubernetes object has
the fields its kind needs, names referenced (ConfigMaps, Secrets, claims, service accounts, roles,
services) are defined, the Prefect job template's placeholders are all declared variables and its Job
has what the Kubernetes worker requires, and prefect.yaml's entrypoints are flows with valid crons.
"""

from __future__ import annotations

import ast
import functools
import json
import re
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
NAMESPACE = "dsllm"
CLUSTER_SCOPED = {"Namespace"}
WORKLOADS = {"Deployment", "StatefulSet"}


def _documents(path: Path) -> list[dict]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs, f"{path} holds no YAML document"
    return docs


@functools.cache
def _k8s_objects() -> list[tuple[Path, dict]]:
    return [(p, d) for p in sorted(INFRA.rglob("*.yaml")) for d in _documents(p) if "apiVersion" in d]


def _defined(kind: str) -> set[str]:
    return {d["metadata"]["name"] for _, d in _k8s_objects() if d["kind"] == kind}


def _pod_specs(obj: dict) -> list[dict]:
    """Every pod template spec inside a workload, Job template, RayCluster or RayJob."""
    found = []
    if isinstance(obj, dict):
        if "containers" in obj:
            found.append(obj)
        for value in obj.values():
            found += _pod_specs(value)
    elif isinstance(obj, list):
        for value in obj:
            found += _pod_specs(value)
    return found


def test_every_yaml_under_infra_parses():
    files = sorted(INFRA.rglob("*.yaml"))
    assert {p.relative_to(INFRA).parts[0] for p in files} >= {"ray", "prefect", "mlflow", "k8s"}
    for path in files:
        _documents(path)


def test_kubernetes_objects_have_the_fields_of_their_kind():
    objects = _k8s_objects()
    assert len(objects) >= 15
    for path, obj in objects:
        where = f"{path.relative_to(ROOT)}: {obj.get('kind')} {obj.get('metadata', {}).get('name')}"
        assert obj.get("kind") and obj["metadata"].get("name"), where
        if obj["kind"] not in CLUSTER_SCOPED:
            assert obj["metadata"].get("namespace") == NAMESPACE, f"{where}: namespace {NAMESPACE} expected"
        for spec in _pod_specs(obj):
            for container in spec["containers"]:
                assert container.get("name") and container.get("image"), f"{where}: container without name/image"
        _check_kind(obj, where)


def _check_kind(obj: dict, where: str) -> None:
    kind, spec = obj["kind"], obj.get("spec", {})
    if kind in WORKLOADS:
        selector = spec["selector"]["matchLabels"]
        labels = spec["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), f"{where}: selector does not match the pod labels"
        if kind == "StatefulSet":
            assert spec["serviceName"] in _defined("Service"), f"{where}: headless service missing"
    elif kind == "Service":
        pods = [d["spec"]["template"]["metadata"]["labels"] for _, d in _k8s_objects() if d["kind"] in WORKLOADS]
        assert any(spec["selector"].items() <= labels.items() for labels in pods), f"{where}: selects no pod"
        assert all(isinstance(p["port"], int) for p in spec["ports"]), where
    elif kind == "ConfigMap":
        assert all(isinstance(v, str) for v in obj["data"].values()), f"{where}: ConfigMap values must be strings"
    elif kind == "Secret":
        assert obj.get("stringData") or obj.get("data"), where
    elif kind == "PersistentVolumeClaim":
        assert spec["accessModes"] and spec["resources"]["requests"]["storage"], where
    elif kind == "RoleBinding":
        assert obj["roleRef"]["name"] in _defined("Role"), f"{where}: unknown role"
        assert {s["name"] for s in obj["subjects"]} <= _defined("ServiceAccount"), f"{where}: unknown account"
    elif kind == "RayCluster":
        assert spec["headGroupSpec"]["template"] and spec["workerGroupSpecs"], where
    elif kind == "RayJob":
        assert spec["entrypoint"] and spec["rayClusterSpec"]["headGroupSpec"], where


def _references(obj) -> set[tuple[str, str]]:
    """(kind, name) of every ConfigMap, Secret, claim and service account an object refers to."""
    refs: set[tuple[str, str]] = set()
    if isinstance(obj, dict):
        for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret"), ("secretKeyRef", "Secret"),
                          ("configMap", "ConfigMap"), ("persistentVolumeClaim", "PersistentVolumeClaim")):
            if isinstance(obj.get(key), dict):
                refs.add((kind, obj[key].get("name") or obj[key].get("claimName")))
        if isinstance(obj.get("serviceAccountName"), str):
            refs.add(("ServiceAccount", obj["serviceAccountName"]))
        for value in obj.values():
            refs |= _references(value)
    elif isinstance(obj, list):
        for value in obj:
            refs |= _references(value)
    return refs


def _job_template() -> dict:
    return json.loads((INFRA / "prefect" / "base-job-template.json").read_text())


def test_every_referenced_configmap_secret_claim_and_account_is_defined():
    refs = set().union(*(_references(obj) for _, obj in _k8s_objects()))
    refs |= {(kind, name) for kind, name in _references(_job_template()["job_configuration"]) if "{{" not in name}
    assert ("Secret", "dsllm-secrets") in refs and ("PersistentVolumeClaim", "dsllm-shared") in refs
    missing = {(kind, name) for kind, name in refs if name not in _defined(kind)}
    assert not missing, f"referenced but defined nowhere under infra/: {sorted(missing)}"


def test_prefect_job_template_declares_its_placeholders_and_satisfies_the_kubernetes_worker():
    template = _job_template()
    variables = template["variables"]["properties"]
    placeholders = set(re.findall(r"{{\s*(\w+)\s*}}", json.dumps(template["job_configuration"])))
    assert placeholders <= set(variables), f"undeclared: {placeholders - set(variables)}"
    unused = set(variables) - placeholders
    assert not unused, f"declared but never used: {unused}"
    job = template["job_configuration"]["job_manifest"]
    pod = job["spec"]["template"]["spec"]
    # what prefect-kubernetes validates before it creates a Job
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    assert (pod["restartPolicy"], pod["parallelism"], pod["completions"]) == ("Never", 1, 1)
    assert pod["containers"][0]["name"] == "prefect-job" and pod["containers"][0]["env"] == "{{ env }}"
    defaults = variables["env"]["default"]
    assert defaults["DSLLM_REPO"] and defaults["RAY_ADDRESS"].startswith("ray://")  # prefect.yaml's pull step
    claim = variables["shared_pvc"]["default"]
    assert claim in _defined("PersistentVolumeClaim") and variables["namespace"]["default"] == NAMESPACE


def test_ray_cluster_launcher_config():
    config = yaml.safe_load((INFRA / "ray" / "cluster.yaml").read_text())
    assert config["head_node_type"] in config["available_node_types"]
    assert config["cluster_name"] and config["provider"]["type"]
    assert sum(t.get("max_workers", 0) for t in config["available_node_types"].values()) <= config["max_workers"]


def test_mlflow_compose_is_postgres_and_s3_backed():
    compose = yaml.safe_load((INFRA / "mlflow" / "docker-compose.yaml").read_text())
    services = compose["services"]
    for name, service in services.items():
        assert service.get("image") or service.get("build"), f"{name}: no image"
        assert set(service.get("depends_on", {})) <= set(services), f"{name}: depends on an unknown service"
    command = " ".join(services["mlflow"]["command"])
    assert "--backend-store-uri=postgresql+psycopg2://" in command and "--artifacts-destination=s3://" in command
    assert services["mlflow"]["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert (INFRA / "mlflow" / services["mlflow"]["build"] / "Dockerfile").is_file()
    dockerfile = (INFRA / "mlflow" / "Dockerfile").read_text()
    assert "psycopg2" in dockerfile and "boto3" in dockerfile


def _is_flow(path: Path, function: str) -> bool:
    """`function` in `path` is decorated with Prefect's @flow (read from the source: no heavy imports)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef) and node.name == function:
            calls = [d.func if isinstance(d, ast.Call) else d for d in node.decorator_list]
            return any(isinstance(d, ast.Name) and d.id == "flow" for d in calls)
    return False


@pytest.mark.parametrize("name", ["prefect.yaml", "tests/dsllm/prefect-worker-check.yaml"])
def test_prefect_yaml_entrypoints_are_flows_and_crons_parse(name):
    from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule

    config = yaml.safe_load((ROOT / name).read_text())
    names = [d["name"] for d in config["deployments"]]
    assert len(names) == len(set(names)), "deployment names must be unique"
    for deployment in config["deployments"]:
        path, _, function = deployment["entrypoint"].partition(":")
        assert _is_flow(ROOT / path, function), f"{deployment['entrypoint']} is not a @flow"
        assert deployment["work_pool"]["name"] == "dsllm-process"
        for schedule in deployment.get("schedules", []):
            assert ("cron" in schedule) != ("interval" in schedule), f"one of cron/interval: {schedule}"
            if "cron" in schedule:
                CronSchedule(cron=schedule["cron"], timezone=schedule.get("timezone"))
            else:
                assert IntervalSchedule(interval=schedule["interval"]).interval.total_seconds() > 0
            assert isinstance(schedule["active"], bool) and schedule["slug"]
