"""Reading the deployment files for the tests: YAML documents, the rendered kustomization, a container's env."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cloudcoil.models.keda.v1alpha1 import ScaledObject, TriggerAuthentication
from cloudcoil.models.prometheus_operator.v1 import PodMonitor, PrometheusRule
from kubernetes_validate.utils import SchemaNotFoundError, latest_version
from kubernetes_validate.utils import validate as validate_kubernetes

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


# The newest Kubernetes kubernetes-validate knows, and the version of the kubectl on the project's machines.
KUBERNETES_VERSIONS = sorted({latest_version(), "1.32.0"})

# Custom resources, checked against their projects' models (KEDA, the prometheus-operator).
CUSTOM_KINDS: dict[str, tuple[str, Any]] = {
    "TriggerAuthentication": ("keda.sh/v1alpha1", TriggerAuthentication),
    "PodMonitor": ("monitoring.coreos.com/v1", PodMonitor),
    "PrometheusRule": ("monitoring.coreos.com/v1", PrometheusRule),
}


def validate_resource(resource: Resource, where: str) -> None:
    """Strict validation (unknown fields are errors). ScaledObjects against KEDA's ScaledObject model: parsing
    and dumping back must give the same document, so a misspelt or mistyped field cannot pass; the other custom
    resources likewise against their models (dumping only what was set, as their models fill in defaults)."""
    if resource["kind"] == "ScaledObject":
        assert resource["apiVersion"] == "keda.sh/v1alpha1", where
        parsed = ScaledObject.model_validate(resource)
        assert parsed.model_dump(by_alias=True, exclude_none=True, mode="json") == resource, where
        return
    if resource["kind"] in CUSTOM_KINDS:
        api_version, model = CUSTOM_KINDS[resource["kind"]]
        assert resource["apiVersion"] == api_version, where
        dumped = model.model_validate(resource).model_dump(by_alias=True, exclude_unset=True, mode="json")
        assert dumped == resource, where
        return
    for version in KUBERNETES_VERSIONS:
        try:
            validate_kubernetes(resource, version, strict=True)
        except SchemaNotFoundError as exc:  # a kind with no schema must not pass silently
            pytest.fail(f"{where}: no schema for {resource['kind']} ({exc})")


COMPONENTS = K8S / "components"


def overlay_on_example(folder: Path, text: str) -> list[Resource]:
    """A team's overlay on top of the example (paths relative, as kustomize requires)."""
    example = os.path.relpath(OVERLAY, folder)
    components = os.path.relpath(COMPONENTS, folder)
    (folder / "kustomization.yaml").write_text(
        text.replace("EXAMPLE", example).replace("COMPONENTS", components)
    )
    return kustomize(folder)
