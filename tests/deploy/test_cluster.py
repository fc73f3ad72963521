"""deploy/k8s beyond the workloads: the dashboard's sign-in Secret, the setup Job per image version, disruption
budgets, headless Services and the PodMonitor for every worker, NetworkPolicies, the Ingress, bounded scratch
space, and the Temporal mTLS and API-key components (with KEDA's TriggerAuthentication)."""

from __future__ import annotations

import ipaddress
import os
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings
from core.signin import auth_problems
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
    overlay_on_example,
    pod_spec,
    validate_resource,
)


@pytest.fixture(scope="module")
def rendered() -> list[Resource]:
    need(kubectl() is not None, "kubectl (with kustomize)")
    return kustomize(OVERLAY)


def labels_match(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels, matchExpressions with In/NotIn/Exists/DoesNotExist)."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
            "In": labels.get(key) in values,
            "NotIn": labels.get(key) not in values,
        }[op]
        if not ok:
            return False
    return True


def pod_labels(workload: Resource) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def test_the_dashboard_reads_its_sign_in_from_a_mounted_secret(
    rendered: list[Resource], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The [auth] file comes from the Secret loreguard-dashboard-auth, mounted read-only where
    LOREGUARD_DASHBOARD_SECRETS points; the example's file is complete but for its placeholders, which the
    dashboard refuses in production (so an unedited example cannot go live without sign-in secrets)."""
    dashboard = by_kind(rendered, "Deployment")["loreguard-dashboard"]
    (container,) = pod_spec(dashboard)["containers"]
    env = container_env(container, rendered)
    secrets_path = Path(env["LOREGUARD_DASHBOARD_SECRETS"])
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "dashboard-auth"]
    assert mount["readOnly"] is True and secrets_path.parent == Path(mount["mountPath"])
    (volume,) = [v for v in pod_spec(dashboard)["volumes"] if v["name"] == "dashboard-auth"]
    assert volume["secret"]["secretName"] == "loreguard-dashboard-auth"
    assert volume["secret"]["defaultMode"] == 0o440  # the pod's group (fsGroup) reads it, nobody else
    (item,) = volume["secret"]["items"]
    assert item["path"] == secrets_path.name
    secret = by_kind(rendered, "Secret")["loreguard-dashboard-auth"]
    auth = tomllib.loads(secret["stringData"][item["key"]])["auth"]
    problems = auth_problems(auth, address=env["LOREGUARD_DASHBOARD_ADDRESS"], environment="production")
    assert len(problems) == 1 and "cookie_secret" in problems[0], problems
    filled = {**auth, "cookie_secret": "f" * 8 + os.urandom(16).hex()}
    assert auth_problems(filled, address="0.0.0.0", environment="production") == []
    assert auth["redirect_uri"] == env["LOREGUARD_PUBLIC_DASHBOARD_URL"] + "/oauth2callback"
    # Workers never see the dashboard's sign-in secrets.
    for name in WORKER_QUEUES:
        spec = pod_spec(by_kind(rendered, "Deployment")[name])
        assert all("dashboard-auth" not in str(v) for v in spec["volumes"]), name


def test_the_setup_job_is_a_new_job_for_each_image_version(rendered: list[Resource], tmp_path: Path) -> None:
    """A Job's pod template cannot change: the Job's name carries the image tag, so applying a new version
    creates (and runs) a new Job instead of failing on the old one."""
    (job,) = by_kind(rendered, "Job").values()
    (setup,) = pod_spec(job)["containers"]
    tag = setup["image"].rsplit(":", 1)[1]
    assert job["metadata"]["name"] == f"loreguard-setup-{tag}"
    # The next release, as README's Deploy steps make it: the example overlay's `images` gets the new tag.
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    kustomization = copy / "overlays" / "example" / "kustomization.yaml"
    text = kustomization.read_text()
    assert text.count("newTag: 0.1.0") == 1
    kustomization.write_text(text.replace("newTag: 0.1.0", "newTag: 0.2.0"))
    upgraded = kustomize(copy / "overlays" / "example")
    (job,) = by_kind(upgraded, "Job").values()
    assert job["metadata"]["name"] == "loreguard-setup-0.2.0"
    assert pod_spec(job)["containers"][0]["image"] == "registry.example.org/loreguard:0.2.0"
    validate_resource(job, "upgraded Job")


def test_every_deployment_has_a_disruption_budget_that_lets_a_drain_through(rendered: list[Resource]) -> None:
    budgets = list(by_kind(rendered, "PodDisruptionBudget").values())
    for name, deployment in by_kind(rendered, "Deployment").items():
        (budget,) = [b for b in budgets if labels_match(b["spec"]["selector"], pod_labels(deployment))]
        assert budget["spec"] == {"maxUnavailable": 1, "selector": budget["spec"]["selector"]}, name
    # ... and no budget selects the setup Job's pod (a Job would block a drain).
    (job,) = by_kind(rendered, "Job").values()
    assert not [b for b in budgets if labels_match(b["spec"]["selector"], pod_labels(job))]


def test_every_worker_is_scraped_on_both_metrics_ports(rendered: list[Resource]) -> None:
    services = by_kind(rendered, "Service")
    (monitor,) = by_kind(rendered, "PodMonitor").values()
    scraped_ports = {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]}
    assert scraped_ports == {"health", "sdk-metrics"}
    for endpoint in monitor["spec"]["podMetricsEndpoints"]:
        relabel = {r["targetLabel"]: r["sourceLabels"] for r in endpoint["relabelings"]}
        assert relabel["queue"] == ["__meta_kubernetes_pod_label_loreguard_io_task_queue"]
    for name, deployment in by_kind(rendered, "Deployment").items():
        (container,) = pod_spec(deployment)["containers"]
        ports = {p["name"] for p in container["ports"]}
        selected = labels_match(monitor["spec"]["selector"], pod_labels(deployment))
        if name not in WORKER_QUEUES:
            assert not selected, name
            continue
        assert selected and scraped_ports <= ports, name
        assert pod_labels(deployment)["loreguard.io/task-queue"] == WORKER_QUEUES[name]
        service = services[name]
        assert service["spec"]["clusterIP"] == "None", name
        assert labels_match({"matchLabels": service["spec"]["selector"]}, pod_labels(deployment)), name
        assert {p["targetPort"] for p in service["spec"]["ports"]} == scraped_ports, name


def test_scratch_volumes_are_bounded(rendered: list[Resource]) -> None:
    for workload, container in containers(rendered):
        spec = pod_spec(workload)
        for volume in spec["volumes"]:
            if "emptyDir" in volume:
                assert volume["emptyDir"].get("sizeLimit"), (workload["metadata"]["name"], volume["name"])
        mounted = {m["name"] for m in container["volumeMounts"]}
        assert {"tmp", "state"} <= mounted


def allowed(
    policies: list[Resource], labels: dict[str, str], direction: str, port: int, peer: dict[str, Any]
) -> bool:
    """Whether some policy selecting a pod with `labels` lets it talk to `peer` on TCP `port` (direction
    "egress" or "ingress"). `peer` is {"ip": ...} or {"namespace": ..., "labels": {...}}."""
    key = "to" if direction == "egress" else "from"
    for policy in policies:
        spec = policy["spec"]
        if not labels_match(spec["podSelector"], labels) or direction.capitalize() not in spec["policyTypes"]:
            continue
        for rule in spec.get(direction, []):
            if not any(
                p.get("protocol", "TCP") == "TCP" and p["port"] == port for p in rule.get("ports", [])
            ):
                continue
            for target in rule.get(key, []):
                if "ipBlock" in target and "ip" in peer:
                    block = target["ipBlock"]
                    ip = ipaddress.ip_address(peer["ip"])
                    if ip in ipaddress.ip_network(block["cidr"]) and not any(
                        ip in ipaddress.ip_network(e) for e in block.get("except", [])
                    ):
                        return True
                if "namespaceSelector" in target and "namespace" in peer:
                    ns = {"kubernetes.io/metadata.name": peer["namespace"]}
                    if labels_match(target["namespaceSelector"], ns) and labels_match(
                        target.get("podSelector", {}), peer.get("labels", {})
                    ):
                        return True
    return False


def test_network_policies_allow_what_each_pod_needs_and_nothing_else(rendered: list[Resource]) -> None:
    policies = list(by_kind(rendered, "NetworkPolicy").values())
    deny = by_kind(rendered, "NetworkPolicy")["loreguard-default-deny"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    postgresql = {"ip": "10.0.0.10"}
    temporal = {"namespace": "temporal", "labels": {"app.kubernetes.io/component": "frontend"}}
    dns = {"namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}}
    public = {"ip": "203.0.113.7"}  # a source, the model API, a webhook
    for peer in ({"ip": "169.254.169.254"}, {"ip": "10.1.2.3"}, {"ip": "192.168.0.1"}):
        for workload, _ in containers(rendered):
            assert not allowed(policies, pod_labels(workload), "egress", 443, peer), peer
    deployments = by_kind(rendered, "Deployment")
    (job,) = by_kind(rendered, "Job").values()
    for workload in [*deployments.values(), job]:
        labels, name = pod_labels(workload), workload["metadata"]["name"]
        assert allowed(policies, labels, "egress", 5432, postgresql), name
        assert allowed(policies, labels, "egress", 7233, temporal), name
        assert allowed(policies, labels, "egress", 53, dns), name
        assert not allowed(policies, labels, "egress", 5432, public), name
    for name in WORKER_QUEUES:
        labels = pod_labels(deployments[name])
        assert allowed(policies, labels, "egress", 443, public), name
        assert allowed(policies, labels, "egress", 587, public), name  # the email channel
        for port in (8080, 9464):
            assert allowed(policies, labels, "ingress", port, {"namespace": "monitoring"}), name
        assert not allowed(policies, labels, "ingress", 8080, {"namespace": "default"}), name
    dashboard = pod_labels(deployments["loreguard-dashboard"])
    assert allowed(policies, dashboard, "ingress", 8501, {"namespace": "ingress-nginx"})
    assert not allowed(policies, dashboard, "ingress", 8501, {"namespace": "default"})
    assert allowed(policies, dashboard, "egress", 443, public)  # the identity provider
    assert not allowed(policies, pod_labels(job), "egress", 443, public)


def test_the_ingress_carries_the_dashboard_and_its_websocket(rendered: list[Resource]) -> None:
    (ingress,) = by_kind(rendered, "Ingress").values()
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    backend = path["backend"]["service"]
    service = by_kind(rendered, "Service")[backend["name"]]
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    assert path["path"] == "/" and path["pathType"] == "Prefix"  # /_stcore/stream and /oauth2callback too
    annotations = ingress["metadata"]["annotations"]
    # ingress-nginx closes an idle proxied websocket after proxy-read-timeout (60 s by default).
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 3600
    assert annotations["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    config = next(iter(by_kind(rendered, "ConfigMap").values()))["data"]
    assert config["LOREGUARD_PUBLIC_DASHBOARD_URL"] == f"https://{rule['host']}"
    assert rule["host"] in ingress["spec"]["tls"][0]["hosts"]


def pods(resources: list[Resource]) -> list[Resource]:
    return [r for r in resources if r["kind"] in ("Deployment", "Job")]


def test_the_mtls_component_mounts_the_client_certificate_everywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    resources = overlay_on_example(
        tmp_path,
        "resources: [EXAMPLE]\ncomponents: [COMPONENTS/temporal-mtls]\n",
    )
    for resource in resources:
        validate_resource(resource, f"{resource['kind']}/{resource['metadata']['name']}")
    auths = by_kind(resources, "TriggerAuthentication")
    (auth,) = auths.values()
    keys = {ref["parameter"]: ref for ref in auth["spec"]["secretTargetRef"]}
    assert set(keys) == {"ca", "cert", "key"} and {r["name"] for r in keys.values()} == {
        "loreguard-temporal-tls"
    }
    for obj in by_kind(resources, "ScaledObject").values():
        (trigger,) = obj["spec"]["triggers"]
        assert trigger["authenticationRef"]["name"] in auths
    for key in [k for k in os.environ if k.startswith("LOREGUARD_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    for workload in pods(resources):
        (container,) = pod_spec(workload)["containers"]
        name = workload["metadata"]["name"]
        (volume,) = [v for v in pod_spec(workload)["volumes"] if v["name"] == "temporal-tls"]
        assert volume["secret"]["secretName"] == "loreguard-temporal-tls"
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == "temporal-tls"]
        assert mount["readOnly"] is True
        env = container_env(container, resources)
        # Each TLS setting names the file of the Secret key KEDA reads too.
        for setting, parameter in (("CA", "ca"), ("CERT", "cert"), ("KEY", "key")):
            path = Path(env[f"LOREGUARD_TEMPORAL_TLS_{setting}_FILE"])
            assert path == Path(mount["mountPath"]) / keys[parameter]["key"], (name, setting)
        with monkeypatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            settings = Settings()
        assert settings.temporal_tls_cert_file and settings.temporal_tls_key_file, name


def test_the_api_key_component_gives_keda_the_workers_key(tmp_path: Path) -> None:
    resources = overlay_on_example(
        tmp_path,
        "resources: [EXAMPLE]\ncomponents: [COMPONENTS/temporal-api-key]\n",
    )
    for resource in resources:
        validate_resource(resource, f"{resource['kind']}/{resource['metadata']['name']}")
    (auth,) = by_kind(resources, "TriggerAuthentication").values()
    (ref,) = auth["spec"]["secretTargetRef"]
    assert ref["parameter"] == "apiKey"
    for obj in by_kind(resources, "ScaledObject").values():
        (trigger,) = obj["spec"]["triggers"]
        assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    for workload in pods(resources):
        (container,) = pod_spec(workload)["containers"]
        (var,) = [v for v in container["env"] if v["name"] == "LOREGUARD_TEMPORAL_API_KEY"]
        assert var["valueFrom"]["secretKeyRef"] == {"name": ref["name"], "key": ref["key"], "optional": True}
