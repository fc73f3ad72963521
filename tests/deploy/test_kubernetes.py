"""deploy/k8s: every manifest and the rendered overlay pass strict schema validation (Kubernetes, KEDA), and what
they say holds: one worker Deployment per task queue, autoscaling on backlog, secrets from the Secret, probes."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings
from dashboard.task_queues import QueueState, queue_advice
from orchestration.constants import SCALED_TASK_TYPE
from tests.conftest import need
from tests.deploy.manifests import (
    K8S,
    OVERLAY,
    WORKER_QUEUES,
    Resource,
    by_kind,
    container_env,
    containers,
    kubectl,
    kustomize,
    load_documents,
    manifest_files,
    pod_spec,
    validate_resource,
)
from workers.metrics import HealthChecks, ObservabilityServer, WorkerMetrics

# Trigger metadata KEDA's `temporal` scaler reads (pkg/scalers/temporal_scaler.go); anything else is a typo.
TEMPORAL_SCALER_KEYS = {
    "endpoint",
    "endpointFromEnv",
    "namespace",
    "namespaceFromEnv",
    "taskQueue",
    "taskQueueFromEnv",
    "targetQueueSize",
    "activationTargetQueueSize",
    "queueTypes",
    "workerDeploymentName",
    "workerDeploymentBuildId",
    "buildId",
    "selectAllActive",
    "selectUnversioned",
    "minConnectTimeout",
    "unsafeSsl",
    "tlsServerName",
}


@pytest.fixture(scope="module")
def rendered() -> list[Resource]:
    need(kubectl() is not None, "kubectl (with kustomize)")
    return kustomize(OVERLAY)


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_every_manifest_passes_strict_validation(path: Path) -> None:
    resources = load_documents(path.read_text())
    assert resources, f"{path} holds no resource"
    for resource in resources:
        validate_resource(resource, f"{path.name}: {resource['kind']}/{resource['metadata']['name']}")


def test_the_rendered_overlay_passes_strict_validation(rendered: list[Resource]) -> None:
    kinds = sorted(r["kind"] for r in rendered)
    assert kinds == sorted(
        ["Namespace", "ConfigMap", "Job", "Ingress", "PodMonitor", "PrometheusRule"]
        + ["Secret"] * 2  # loreguard-secrets, loreguard-dashboard-auth
        + ["Service"] * 5  # the dashboard's, a headless one per worker
        + ["Deployment"] * 5
        + ["PodDisruptionBudget"] * 5
        + ["ScaledObject"] * 4
        + ["NetworkPolicy"] * 6
    )
    for resource in rendered:
        validate_resource(resource, f"{resource['kind']}/{resource['metadata']['name']}")
        if resource["kind"] != "Namespace":
            assert resource["metadata"]["namespace"] == "loreguard"


def test_the_base_renders_without_keda(rendered: list[Resource]) -> None:
    """Clusters without KEDA apply the base (plus a Secret) and scale with an HPA instead."""
    base = kustomize(K8S / "base")
    assert "ScaledObject" not in {r["kind"] for r in base}
    assert set(by_kind(base, "Deployment")) == set(by_kind(rendered, "Deployment"))


def test_one_worker_deployment_per_task_queue(rendered: list[Resource]) -> None:
    deployments = by_kind(rendered, "Deployment")
    assert set(deployments) == {*WORKER_QUEUES, "loreguard-dashboard"}
    for name, queue in WORKER_QUEUES.items():
        (container,) = pod_spec(deployments[name])["containers"]
        assert container["command"] == ["loreguard", "worker", "--queue", queue]
        assert container["image"] == "registry.example.org/loreguard:0.1.0"
        assert "replicas" not in deployments[name]["spec"], "KEDA owns the replica count"
    (setup,) = pod_spec(by_kind(rendered, "Job")["loreguard-setup-0.1.0"])["containers"]
    assert setup["command"][:2] == ["loreguard", "setup"]
    service = by_kind(rendered, "Service")["loreguard-dashboard"]
    assert service["spec"].get("clusterIP") != "None"
    assert (
        service["spec"]["selector"].items()
        <= deployments["loreguard-dashboard"]["spec"]["selector"]["matchLabels"].items()
    )


def test_pods_run_as_a_numeric_non_root_user_with_limits(rendered: list[Resource]) -> None:
    for workload, container in containers(rendered):
        pod = pod_spec(workload)["securityContext"]
        assert pod["runAsNonRoot"] is True and isinstance(pod["runAsUser"], int) and pod["runAsUser"] > 0
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False and security["capabilities"] == {"drop": ["ALL"]}
        assert security["readOnlyRootFilesystem"] is True
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(
            resources["limits"]
        )


def test_workers_probe_health_and_wait_for_work_in_flight(rendered: list[Resource]) -> None:
    deployments = by_kind(rendered, "Deployment")
    for name in WORKER_QUEUES:
        spec = pod_spec(deployments[name])
        assert spec["terminationGracePeriodSeconds"] >= 60, name
        (container,) = spec["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"health": 8080, "sdk-metrics": 9464}
        assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "health"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "health"}
        assert container["startupProbe"]["httpGet"]["path"] == "/health/live"
    # CPU-bound chunks may run for minutes: their queues get the longest grace.
    assert pod_spec(deployments["loreguard-worker-processing"])["terminationGracePeriodSeconds"] >= 300


def test_the_worker_shutdown_grace_fits_in_the_pod_grace_period(
    rendered: list[Resource], clean_environment: pytest.MonkeyPatch
) -> None:
    """SIGTERM gives running activities LOREGUARD_WORKER_SHUTDOWN_GRACE_SECONDS, then the cancelled ones need a
    heartbeat (5 s) to stop and the process needs to exit: 10 s before the kubelet's SIGKILL."""
    deployments = by_kind(rendered, "Deployment")
    for name in WORKER_QUEUES:
        spec = pod_spec(deployments[name])
        (container,) = spec["containers"]
        grace = float(container_env(container, rendered)["LOREGUARD_WORKER_SHUTDOWN_GRACE_SECONDS"])
        assert grace + 10 == spec["terminationGracePeriodSeconds"], name
    shortest = min(pod_spec(deployments[n])["terminationGracePeriodSeconds"] for n in WORKER_QUEUES)
    assert Settings(_env_file=None).worker_shutdown_grace_seconds + 10 <= shortest


def test_processing_processes_follow_the_cpu_limit(rendered: list[Resource]) -> None:
    (container,) = pod_spec(by_kind(rendered, "Deployment")["loreguard-worker-processing"])["containers"]
    (var,) = [v for v in container["env"] if v["name"] == "LOREGUARD_PROCESSING_PROCESSES"]
    assert var["valueFrom"]["resourceFieldRef"] == {
        "containerName": "worker",
        "resource": "limits.cpu",
        "divisor": "1",
    }
    assert container_env(container, rendered)["LOREGUARD_PROCESSING_PROCESSES"] == str(
        math.ceil(float(container["resources"]["limits"]["cpu"]))
    )


def test_every_secret_setting_comes_from_the_secret(rendered: list[Resource]) -> None:
    config = next(iter(by_kind(rendered, "ConfigMap").values()))["data"]
    secret_settings = {
        "LOREGUARD_DATABASE_URL": "database-url",
        "LOREGUARD_OPENAI_API_KEY": "openai-api-key",
        "LOREGUARD_WEBHOOK_URL": "webhook-url",
        "LOREGUARD_SMTP_PASSWORD": "smtp-password",
        "LOREGUARD_PAGERDUTY_ROUTING_KEY": "pagerduty-routing-key",
        "LOREGUARD_TEMPORAL_API_KEY": "temporal-api-key",
    }
    assert not set(secret_settings) & set(config), "a secret setting sits in the ConfigMap"
    secret = by_kind(rendered, "Secret")["loreguard-secrets"]
    assert set(by_kind(rendered, "Secret")) == {"loreguard-secrets", "loreguard-dashboard-auth"}
    # The Temporal Cloud key is commented out in the example: a placeholder would turn TLS on.
    optional = {"temporal-api-key"}
    assert set(secret["stringData"]) == {*secret_settings.values(), "cookie-secret"} - optional
    for workload, container in containers(rendered):
        name = workload["metadata"]["name"]
        refs = {
            v["name"]: v["valueFrom"]["secretKeyRef"]
            for v in container.get("env", [])
            if "secretKeyRef" in v.get("valueFrom", {})
        }
        assert refs["LOREGUARD_DATABASE_URL"] == {"name": "loreguard-secrets", "key": "database-url"}, name
        # Every connection to Temporal uses the same options, so every workload gets the API key.
        assert refs["LOREGUARD_TEMPORAL_API_KEY"]["key"] == "temporal-api-key", name
        if name in WORKER_QUEUES:
            for setting, key in secret_settings.items():
                assert refs[setting]["key"] == key, (name, setting)
        if name == "loreguard-dashboard":
            assert refs["STREAMLIT_SERVER_COOKIE_SECRET"]["key"] == "cookie-secret"


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No LOREGUARD_* from this machine and no .env file: only what the manifest gives."""
    import os

    for key in list(os.environ):
        if key.startswith("LOREGUARD_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_the_environment_a_deployment_gives_makes_valid_settings(
    rendered: list[Resource], clean_environment: pytest.MonkeyPatch
) -> None:
    for workload, container in containers(rendered):
        name = workload["metadata"]["name"]
        env = container_env(container, rendered)
        with clean_environment.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            settings = Settings()
        assert settings.environment == "production", name
        assert settings.target_database_url.startswith("postgresql://"), name
        assert settings.target_temporal_address == "temporal-frontend.temporal.svc.cluster.local:7233"
        if name in WORKER_QUEUES:
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            assert settings.health_port == ports["health"] and settings.metrics_port == ports["sdk-metrics"]
            assert settings.metrics_address == "0.0.0.0", "probes and Prometheus reach the pod's IP"
            assert settings.webhook_url and settings.smtp_password is not None
        if name == "loreguard-worker-processing":
            assert settings.cpu_processes == 2
        if name == "loreguard-dashboard":
            assert settings.dashboard_address == "0.0.0.0"
            assert settings.dashboard_port == container["ports"][0]["containerPort"]
            assert str(settings.dashboard_secrets) == "/etc/loreguard/dashboard/secrets.toml"


def test_the_probe_paths_are_the_ones_a_worker_serves(rendered: list[Resource]) -> None:
    (container,) = pod_spec(by_kind(rendered, "Deployment")["loreguard-worker-ingestion"])["containers"]
    paths = {container[p]["httpGet"]["path"] for p in ("startupProbe", "livenessProbe", "readinessProbe")}
    server = ObservabilityServer(
        "127.0.0.1", 0, WorkerMetrics(), HealthChecks(live=lambda: None, ready={"database": lambda: None})
    ).start()
    try:
        for path in sorted(paths):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5) as resp:
                    code, body = resp.status, json.loads(resp.read())
            except urllib.error.HTTPError as err:  # pragma: no cover - shown in the assertion
                code, body = err.code, {}
            assert code == 200 and body["status"] == "ok", path
    finally:
        server.stop()


def scaled_objects(rendered: list[Resource]) -> dict[str, Resource]:
    return by_kind(rendered, "ScaledObject")


def test_one_temporal_scaled_object_per_worker_deployment(rendered: list[Resource]) -> None:
    objects = scaled_objects(rendered)
    deployments = by_kind(rendered, "Deployment")
    assert {o["spec"]["scaleTargetRef"]["name"] for o in objects.values()} == set(WORKER_QUEUES)
    for obj in objects.values():
        spec: dict[str, Any] = obj["spec"]
        target = spec["scaleTargetRef"]["name"]
        assert spec["scaleTargetRef"]["kind"] == "Deployment" and target in deployments
        assert spec["minReplicaCount"] == 1 and spec["maxReplicaCount"] == 20
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "temporal"
        meta: dict[str, str] = trigger["metadata"]
        assert set(meta) <= TEMPORAL_SCALER_KEYS, set(meta) - TEMPORAL_SCALER_KEYS
        assert all(isinstance(v, str) for v in meta.values()), "KEDA trigger metadata values are strings"
        assert meta["targetQueueSize"] == "100"
        assert meta["taskQueue"] == WORKER_QUEUES[target]
        # The scheduler queue serves workflow tasks only; the others activity tasks only.
        assert meta["queueTypes"] == ("workflow" if target.endswith("scheduler") else "activity")
        # The endpoint and namespace KEDA reads are the ones the target's containers are given.
        (container,) = pod_spec(deployments[target])["containers"]
        env = container_env(container, rendered)
        assert env[meta["endpointFromEnv"]] == "temporal-frontend.temporal.svc.cluster.local:7233"
        assert env[meta["namespaceFromEnv"]] == "default"


def test_the_workers_page_recommends_what_keda_scales_to(
    rendered: list[Resource], clean_environment: pytest.MonkeyPatch
) -> None:
    """Both rules, for every ScaledObject: one replica per targetQueueSize pending tasks of the queue type KEDA
    counts (rounded up), from minReplicaCount to maxReplicaCount; the page's settings come from the same
    ConfigMap, and its defaults are the same numbers."""
    config = next(iter(by_kind(rendered, "ConfigMap").values()))["data"]
    with clean_environment.context() as patch:
        for key, value in config.items():
            patch.setenv(key, value)
        page = Settings()
    defaults = Settings(_env_file=None)
    objects = scaled_objects(rendered)
    assert len(objects) == len(WORKER_QUEUES)
    for name, obj in objects.items():
        spec = obj["spec"]
        (trigger,) = spec["triggers"]
        meta = trigger["metadata"]
        per_replica, lowest, highest = (
            int(meta["targetQueueSize"]),
            spec["minReplicaCount"],
            spec["maxReplicaCount"],
        )
        for settings in (page, defaults):
            assert (settings.tasks_per_replica, settings.min_replicas, settings.max_replicas) == (
                per_replica,
                lowest,
                highest,
            ), name
        assert SCALED_TASK_TYPE[meta["taskQueue"]] == meta["queueTypes"], name

        def keda(backlog: int) -> int:  # KEDA's (and the HPA's AverageValue) rule, bounded
            return max(lowest, min(highest, math.ceil(backlog / per_replica)))  # noqa: B023

        backlogs = (0, 1, 100, 101, 250, 1999, 2000, 2001, 50_000)
        states = [
            QueueState(meta["taskQueue"], kind, 0, backlog, 0.0, 0.0, 0.0, ())
            for backlog in backlogs
            for kind in ("workflow", "activity")
        ]
        advice = queue_advice(
            states,
            per_replica=page.tasks_per_replica,
            minimum=page.min_replicas,
            maximum=page.max_replicas,
            age_target=page.backlog_age_target_seconds,
        )
        # one recommendation per queue, on the task type KEDA counts
        assert set(advice["type"]) == {meta["queueTypes"]}, name
        assert list(advice["recommended replicas"]) == [keda(b) for b in backlogs], name


def test_a_misspelt_scaled_object_field_is_refused(rendered: list[Resource]) -> None:
    """The KEDA check itself: a typo in a field name or a wrongly typed value fails."""
    good = scaled_objects(rendered)["loreguard-worker-processing"]
    typo = json.loads(json.dumps(good))
    typo["spec"]["maxReplicaCout"] = typo["spec"].pop("maxReplicaCount")
    with pytest.raises(AssertionError):
        validate_resource(typo, "typo")
    wrong_type = json.loads(json.dumps(good))
    wrong_type["spec"]["minReplicaCount"] = "1"
    with pytest.raises(AssertionError):
        validate_resource(wrong_type, "wrong type")


def test_the_readme_hpa_is_valid_and_follows_the_same_rule(rendered: list[Resource]) -> None:
    """README's HPA for clusters without KEDA: a valid HorizontalPodAutoscaler with KEDA's numbers."""
    readme = (K8S.parents[1] / "README.md").read_text()
    blocks = [load_documents(block.split("```")[0]) for block in readme.split("```yaml\n")[1:]]
    (hpa,) = [docs[0] for docs in blocks if docs and docs[0].get("kind") == "HorizontalPodAutoscaler"]
    validate_resource(hpa, "README HorizontalPodAutoscaler")
    obj = scaled_objects(rendered)["loreguard-worker-processing"]["spec"]
    spec = hpa["spec"]
    assert spec["scaleTargetRef"]["name"] == obj["scaleTargetRef"]["name"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (obj["minReplicaCount"], obj["maxReplicaCount"])
    (metric,) = spec["metrics"]
    assert metric["external"]["target"] == {
        "type": "AverageValue",
        "averageValue": obj["triggers"][0]["metadata"]["targetQueueSize"],
    }
    # The Temporal server writes the queue's name with underscores.
    selector = metric["external"]["metric"]["selector"]["matchLabels"]
    assert selector == {"taskqueue": "loreguard_processing", "task_type": "Activity"}
