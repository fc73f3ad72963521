"""A worker's own Prometheus metrics and its HTTP endpoint (`/metrics`, `/health/live`, `/health/ready`).

Two exporters per worker process, both scrapeable:

- the Temporal SDK's metrics (`temporal_*`), served by the SDK's Rust runtime on `metrics_port` (default 9464);
- LoreGuard's own (`loreguard_*`) plus the health checks, served by this module on `health_port` (default 8080).

LoreGuard's metrics are recorded in the worker process only (the activity thread), from a `ChunkReport` that the
steps return alongside each chunk's result. The CPU pool processes build their reports and hand them back with the
chunk result, so nothing needs prometheus_client's multiprocess mode.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge as PromGauge
from prometheus_client import Histogram as PromHistogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from core.vocabulary import TIMED_STAGES

log = logging.getLogger(__name__)

# Per-document stage latencies are milliseconds (as the SDK's histograms are).
STAGE_BUCKETS_MS = (0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)
PIPELINE_STAGES = TIMED_STAGES
# 14400 s: the 4-hour SLA target, so Grafana can show the share of batches within it.
BATCH_BUCKETS_S = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 21600, 86400)


@dataclass
class ChunkReport:
    """What one chunk did, for metrics: made where the chunk ran (maybe a pool process), recorded in the worker."""

    source: str = ""
    stage: str = ""
    done: int = 0
    failed_by_stage: Counter[str] = field(default_factory=Counter)
    labels: Counter[str] = field(default_factory=Counter)
    stage_ms: dict[str, list[float]] = field(default_factory=dict)
    evaluator_calls: int = 0
    evaluator_errors: Counter[str] = field(default_factory=Counter)

    def observe(self, stage: str, ms: float | None) -> None:
        if ms is not None:
            self.stage_ms.setdefault(stage, []).append(float(ms))


class WorkerMetrics:
    """LoreGuard's own metrics on a registry of their own (several workers may share one test process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.documents_processed = PromCounter(
            "loreguard_documents_processed",
            "Documents that passed a pipeline stage",
            ["source", "stage", "label"],
            registry=r,
        )
        self.documents_failed = PromCounter(
            "loreguard_documents_failed",
            "Documents that failed, by the stage they failed in",
            ["source", "stage"],
            registry=r,
        )
        self.stage_latency = PromHistogram(
            "loreguard_stage_latency_milliseconds",
            "Per-document latency of a pipeline stage (ms)",
            ["stage"],
            buckets=STAGE_BUCKETS_MS,
            registry=r,
        )
        self.batch_duration = PromHistogram(
            "loreguard_batch_duration_seconds",
            "Batch duration from start to finish (s), by final status",
            ["status"],
            buckets=BATCH_BUCKETS_S,
            registry=r,
        )
        self.evaluator_calls = PromCounter(
            "loreguard_evaluator_calls", "Evaluator calls", ["evaluator"], registry=r
        )
        self.evaluator_errors = PromCounter(
            "loreguard_evaluator_errors", "Evaluator calls that failed", ["evaluator", "kind"], registry=r
        )
        # The SLA monitor's last check (in the worker that ran it): its time, for the alerts' dead-man's switch,
        # and how many batches in flight it found past the SLA's warning and critical limits.
        self.sla_check_time = PromGauge(
            "loreguard_sla_check_timestamp_seconds",
            "Unix time of the last SLA monitor check this worker ran",
            registry=r,
        )
        self.sla_late_batches = PromGauge(
            "loreguard_sla_late_batches",
            "Batches in flight past the SLA's warning or critical limit, at the last SLA check this worker ran",
            ["level"],
            registry=r,
        )
        for stage in PIPELINE_STAGES:  # series from the start, so rate() sees the first documents too
            self.stage_latency.labels(stage)
        for level in ("warning", "critical"):  # 0 until this worker runs a check (its timestamp stays 0 too)
            self.sla_late_batches.labels(level)

    def record_chunk(self, report: ChunkReport, *, evaluator: str = "") -> None:
        src, stage = report.source, report.stage
        if report.labels:
            for label, n in report.labels.items():
                self.documents_processed.labels(src, stage, label).inc(n)
        elif report.done:
            self.documents_processed.labels(src, stage, "").inc(report.done)
        for failed_stage, n in report.failed_by_stage.items():
            self.documents_failed.labels(src, failed_stage or stage).inc(n)
        for name, values in report.stage_ms.items():
            hist = self.stage_latency.labels(name)
            for v in values:
                hist.observe(v)
        if report.evaluator_calls:
            self.evaluator_calls.labels(evaluator).inc(report.evaluator_calls)
        for kind, n in report.evaluator_errors.items():
            self.evaluator_errors.labels(evaluator, kind).inc(n)

    def record_batch(self, status: str, seconds: float | None) -> None:
        if seconds is not None and seconds >= 0:
            self.batch_duration.labels(status).observe(seconds)

    def record_sla_check(self, *, at: float, warning: int, critical: int) -> None:
        self.sla_late_batches.labels("warning").set(warning)
        self.sla_late_batches.labels("critical").set(critical)
        self.sla_check_time.set(at)


# --- HTTP endpoint ---------------------------------------------------------------------------------------

Check = Callable[[], str | None]  # None = fine, else the reason it failed


@dataclass
class HealthChecks:
    """`live`: the worker is polling. `ready`: named checks (Temporal, database), each None when fine."""

    live: Check
    ready: dict[str, Check]


def run_checks(checks: dict[str, Check]) -> tuple[bool, dict[str, Any]]:
    parts: dict[str, Any] = {}
    ok = True
    for name, check in checks.items():
        try:
            problem = check()
        except Exception as exc:  # a check that raises is a failed check, with its reason
            problem = f"{type(exc).__name__}: {exc}"
        parts[name] = {"ok": problem is None, **({"error": problem} if problem else {})}
        ok = ok and problem is None
    return ok, parts


class HealthCollector(Collector):
    """`loreguard_health_check_ok{check}`: each readiness check (workers, temporal, database, schema), run at
    scrape time, 1 when it passes; alerts see what the readiness probe sees."""

    def __init__(self, health: HealthChecks) -> None:
        self.health = health

    def collect(self) -> Any:
        _, parts = run_checks({"workers": self.health.live, **self.health.ready})
        family = GaugeMetricFamily(
            "loreguard_health_check_ok",
            "1 when the worker's readiness check passes, else 0",
            labels=["check"],
        )
        for name, part in parts.items():
            family.add_metric([name], 1.0 if part["ok"] else 0.0)
        yield family


class ObservabilityServer:
    """`/metrics`, `/health`, `/health/live`, `/health/ready` on one port, in a daemon thread."""

    def __init__(self, host: str, port: int, metrics: WorkerMetrics, health: HealthChecks) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0].rstrip("/")
                if path == "/metrics":
                    body = generate_latest(metrics.registry) + generate_latest(server.health_registry)
                    self._send(200, body, CONTENT_TYPE_LATEST)
                elif path == "/health/live":
                    self._json(*server.live())
                elif path in ("/health/ready", "/health"):
                    self._json(*server.ready())
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _json(self, code: int, body: dict[str, Any]) -> None:
                self._send(code, json.dumps(body).encode(), "application/json")

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # quiet: scraped every few seconds
                log.debug(format, *args)

        self.health = health
        self.health_registry = CollectorRegistry(auto_describe=False)
        self.health_registry.register(HealthCollector(health))
        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="observability", daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def live(self) -> tuple[int, dict[str, Any]]:
        ok, parts = run_checks({"workers": self.health.live})
        return (200 if ok else 503), {"status": "ok" if ok else "failing", "checks": parts}

    def ready(self) -> tuple[int, dict[str, Any]]:
        ok, parts = run_checks({"workers": self.health.live, **self.health.ready})
        failed = [name for name, p in parts.items() if not p["ok"]]
        body = {"status": "ok" if ok else "failing", "failed": failed, "checks": parts}
        return (200 if ok else 503), body

    def start(self) -> ObservabilityServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
