"""Reading the deployment files for the tests: YAML documents, the rendered kustomization, a container's env."""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAY = K8S / "overlays" / "example"
WORKER_QUEUES = {
    "loreguard-worker-scheduler": "loreguard-scheduler",
    "loreguard-worker-ingestion": "loreguard-ingestion",
    "loreguard-worker-processing": "loreguard-processing",
    "loreguard-worker-evaluation": "loreguard-evaluation",
}

Resource = dict[str, Any]


def load_documents(text: str) -> list[Resource]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def manifest_files() -> list[Path]:
    """Every Kubernetes resource file under deploy/k8s (the kustomization files and a component's JSON patches,
    `*.patch.yaml`, are not resources; the rendered overlays they patch are validated)."""
    return sorted(
        p
        for p in K8S.rglob("*.yaml")
        if p.name != "kustomization.yaml" and not p.name.endswith(".patch.yaml")
    )


def kubectl() -> str | None:
    return shutil.which("kubectl")


def kustomize(folder: Path) -> list[Resource]:
    """`kubectl kustomize FOLDER`: the resources `kubectl apply -k FOLDER` would send."""
    binary = kubectl()
    assert binary is not None
    done = subprocess.run([binary, "kustomize", str(folder)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return load_documents(done.stdout)


def by_kind(resources: list[Resource], kind: str) -> dict[str, Resource]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def pod_spec(workload: Resource) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def cpu_cores(quantity: str) -> float:
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def container_env(container: dict[str, Any], resources: list[Resource]) -> dict[str, str]:
    """The environment Kubernetes gives this container: envFrom ConfigMaps, then `env` (values, Secret keys
    as in the rendered Secret, and resourceFieldRef with divisor 1, which rounds up to whole cores)."""
    config_maps, secrets = by_kind(resources, "ConfigMap"), by_kind(resources, "Secret")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(config_maps[source["configMapRef"]["name"]]["data"])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        ref = var["valueFrom"]
        if "secretKeyRef" in ref:
            key_ref = ref["secretKeyRef"]
            data = secrets[key_ref["name"]].get("stringData", {})
            if key_ref["key"] in data:
                env[var["name"]] = data[key_ref["key"]]
            else:
                assert key_ref.get("optional"), f"{var['name']}: Secret key {key_ref['key']} is missing"
        elif "resourceFieldRef" in ref:
            field = ref["resourceFieldRef"]
            assert field["resource"] == "limits.cpu" and str(field.get("divisor", "1")) == "1"
            env[var["name"]] = str(math.ceil(cpu_cores(str(container["resources"]["limits"]["cpu"]))))
        else:
            raise AssertionError(f"{var['name']}: unexpected valueFrom {ref}")
    return env


def containers(resources: list[Resource]) -> Iterator[tuple[Resource, dict[str, Any]]]:
    """(workload, container) for every container of every Deployment and Job."""
    for r in resources:
        if r["kind"] in ("Deployment", "Job"):
            for c in pod_spec(r)["containers"]:
                yield r, c
