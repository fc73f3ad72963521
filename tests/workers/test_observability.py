"""Worker metrics and health: a real Prometheus scrapes a real worker running a real batch; health states."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_api_client import PrometheusConnect
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from urllib3.util.retry import Retry

from cli.devserver import DevServer, free_port
from cli.prometheus import PrometheusServer, prometheus_binary, render_config
from dashboard.metrics import from_prometheus
from data import repository
from data.db import make_engine, make_session_factory
from orchestration.client import register_search_attributes
from tests.conftest import TemporalNamespace, need
from tests.support.batches import pipeline_settings
from tests.support.corpus import write_corpus
from tests.support.observability import observed_worker
from tests.support.operations import start_refresh
from workers.main import health_checks
from workers.metrics import ObservabilityServer, WorkerMetrics

pytestmark = pytest.mark.temporal


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


async def get_json(url: str) -> tuple[int, dict[str, Any]]:
    """Off the event loop: the readiness check runs its Temporal call on this loop."""
    code, body = await asyncio.to_thread(get, url)
    return code, json.loads(body)


def target_errors(prometheus_url: str) -> str:
    """Each scrape target's health and last error, as Prometheus reports them (for a failing assertion)."""
    with urllib.request.urlopen(f"{prometheus_url}/api/v1/targets", timeout=5) as response:
        targets = json.load(response)["data"]["activeTargets"]
    return "; ".join(
        f"{t['labels']['job']} {t['scrapeUrl']}: {t['health']} {t['lastError']}" for t in targets
    )


def wait_for(probe: Callable[[], float | None], expected: float, timeout: float = 30.0) -> float | None:
    deadline = time.monotonic() + timeout
    value = probe()
    while value != expected and time.monotonic() < deadline:
        time.sleep(0.5)
        value = probe()
    return value


async def test_prometheus_scrapes_the_documents_a_batch_processed(
    fresh_dev_server: DevServer,
    sqlite_sessions: sessionmaker[Session],
    sqlite_url: str,
    tmp_path: Path,
) -> None:
    need(prometheus_binary() is not None, "Debian's prometheus binary")
    # A dev server of the test's own: the session's holds every test's namespace, and late in a full run its
    # /metrics answer outgrows the 1 s scrape timeout this test uses.
    dev_server = fresh_dev_server
    sdk_port = free_port()
    runtime = Runtime(
        telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"127.0.0.1:{sdk_port}"))
    )
    client = await Client.connect(dev_server.address, runtime=runtime)
    await register_search_attributes(client, "default")
    folder = tmp_path / "docs"
    write_corpus(folder, 12)
    with sqlite_sessions.begin() as session:
        source_id = repository.create_source(session, name="docs", kind="folder", location=str(folder)).id
    settings = pipeline_settings(sqlite_url, dev_server.address, health_port=0, metrics_port=sdk_port)

    async with observed_worker(client, settings) as server:
        for _ in range(50):  # the workers start polling on their first turn of the loop
            code, live = await get_json(f"http://127.0.0.1:{server.port}/health/live")
            if code == 200:
                break
            await asyncio.sleep(0.1)
        assert code == 200 and live["status"] == "ok"
        code, ready = await get_json(f"http://127.0.0.1:{server.port}/health/ready")
        assert code == 200, ready
        assert ready["failed"] == [] and set(ready["checks"]) == {"workers", "temporal", "database", "schema"}

        config = tmp_path / "prometheus.yml"
        config.write_text(
            render_config(
                worker_targets=[f"127.0.0.1:{server.port}"],
                sdk_targets=[f"127.0.0.1:{sdk_port}"],
                temporal_targets=[f"127.0.0.1:{dev_server.metrics_port}"],
                scrape_interval="1s",
            )
        )
        prom = PrometheusServer(config, tmp_path / "tsdb", free_port())
        await asyncio.to_thread(prom.start)
        try:
            api = PrometheusConnect(url=prom.url, retry=Retry(total=0), timeout=1)

            def scalar(query: str) -> float | None:
                rows = api.custom_query(query)
                return float(rows[0]["value"][1]) if rows else None

            # A first scrape before the batch (stage histograms start at 0), so rates see the batch.
            zero = "sum(loreguard_stage_latency_milliseconds_count)"
            assert await asyncio.to_thread(wait_for, lambda: scalar(zero), 0.0) == 0.0
            _, handle = await start_refresh(client, sqlite_sessions, source_id=source_id)
            result = await handle.result()
            assert result.stored == 12

            stored = f'sum(loreguard_documents_processed_total{{stage="evaluate",source="{source_id}"}})'
            got = await asyncio.to_thread(wait_for, lambda: scalar(stored), 12.0)
            assert got == 12.0
            for job in ("loreguard-workers-sdk", "temporal"):  # every target scraped, and up
                up = functools.partial(scalar, f'sum(up{{job="{job}"}})')
                # a target is up once a scrape succeeds (one can miss its 1 s timeout on a busy machine)
                assert await asyncio.to_thread(wait_for, up, 1.0, 60.0) == 1.0, target_errors(prom.url)
            assert (
                await asyncio.to_thread(
                    scalar, 'count({__name__=~"temporal_.+", job="loreguard-workers-sdk"})'
                )
                is not None
            )
            # Each series is waited for: the batch's duration is recorded by its finish step, which can be
            # scraped one interval after the documents' counters.
            for query, expected in (
                ('sum(loreguard_stage_latency_milliseconds_count{stage="normalize"})', 12.0),
                ("sum(loreguard_batch_duration_seconds_count)", 1.0),
                ("sum(loreguard_evaluator_calls_total)", 12.0),
            ):
                probe = functools.partial(scalar, query)
                assert await asyncio.to_thread(wait_for, probe, expected) == expected, query

            # The dashboard's reader: percentiles and rates from the same Prometheus, within its 1 s budget.
            def measured() -> float | None:
                rates = from_prometheus(prom.url, window="1m", budget=1.0)
                return 1.0 if rates.available and rates.latency_ms.get("evaluate", {}).get(0.95) else None

            assert await asyncio.to_thread(wait_for, measured, 1.0) == 1.0
            rates = await asyncio.to_thread(from_prometheus, prom.url, window="1m", budget=1.0)
            assert rates.available, rates.error
            # (a series' first sample is not an increase to rate(): the batch's documents show in the counter)
            assert rates.stored_per_min is not None and rates.failed_per_min is not None
            assert {"normalize", "extract", "clarify", "evaluate"} <= set(rates.latency_ms)
            assert all(v is not None and v >= 0 for q in rates.latency_ms.values() for v in q.values())
        finally:
            await asyncio.to_thread(prom.stop)


async def test_ready_names_the_database_when_it_is_unreachable(dev_server: DevServer) -> None:
    client = await Client.connect(dev_server.address)
    sessions = make_session_factory(make_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/test"))
    checks = health_checks(client, [], sessions, asyncio.get_running_loop())
    server = ObservabilityServer("127.0.0.1", 0, WorkerMetrics(), checks).start()
    try:
        code, body = await get_json(f"http://127.0.0.1:{server.port}/health/ready")
        assert code == 503
        assert body["failed"] == ["database"]
        assert body["checks"]["temporal"] == {"ok": True}
        assert body["checks"]["database"]["error"]
        code, _ = await get_json(f"http://127.0.0.1:{server.port}/health/live")
        assert code == 200  # polling carries on; only readiness fails
    finally:
        server.stop()


async def test_ready_fails_when_temporal_is_down(sqlite_sessions: sessionmaker[Session]) -> None:
    client = await Client.connect(f"127.0.0.1:{free_port()}", lazy=True)  # nothing listens there
    checks = health_checks(client, [], sqlite_sessions, asyncio.get_running_loop(), timeout=0.5)
    server = ObservabilityServer("127.0.0.1", 0, WorkerMetrics(), checks).start()
    try:
        code, body = await get_json(f"http://127.0.0.1:{server.port}/health/ready")
        assert code == 503
        assert body["failed"] == ["temporal"]
        assert body["checks"]["database"] == {"ok": True}
        code, _ = await asyncio.to_thread(get, f"http://127.0.0.1:{server.port}/nope")
        assert code == 404
    finally:
        server.stop()


async def test_ready_waits_for_the_schema_of_this_code(dev_server: DevServer, sqlite_url: str) -> None:
    """A worker of a new release on a database the setup Job has not migrated yet is not ready (a rollout
    keeps the old pods); at the code's head it is; a revision this code does not know (a later release's) counts
    as newer, not older. /metrics shows each check as loreguard_health_check_ok, for the alert rules."""
    from alembic.script import ScriptDirectory
    from sqlalchemy import text

    from data.migrate import alembic_config, head_revision, upgrade

    head = head_revision()
    previous = ScriptDirectory.from_config(alembic_config(sqlite_url)).get_revision(head).down_revision
    assert isinstance(previous, str)
    upgrade(sqlite_url, previous)
    client = await Client.connect(dev_server.address)
    engine = make_engine(sqlite_url)
    checks = health_checks(client, [], make_session_factory(engine), asyncio.get_running_loop())
    server = ObservabilityServer("127.0.0.1", 0, WorkerMetrics(), checks).start()
    url = f"http://127.0.0.1:{server.port}"
    try:
        code, body = await get_json(f"{url}/health/ready")
        assert code == 503 and body["failed"] == ["schema"]
        error = body["checks"]["schema"]["error"]
        assert f"at revision {previous}" in error and f"needs {head}" in error and "loreguard setup" in error
        _, scraped = await asyncio.to_thread(get, f"{url}/metrics")
        assert metric_total(scraped.decode(), "loreguard_health_check_ok", check="schema") == 0
        assert metric_total(scraped.decode(), "loreguard_health_check_ok", check="temporal") == 1

        upgrade(sqlite_url)
        code, body = await get_json(f"{url}/health/ready")
        assert code == 200, body
        _, scraped = await asyncio.to_thread(get, f"{url}/metrics")
        assert metric_total(scraped.decode(), "loreguard_health_check_ok", check="schema") == 1

        with engine.begin() as conn:
            conn.execute(text("update alembic_version set version_num = '9999_from_a_later_release'"))
        code, body = await get_json(f"{url}/health/ready")
        assert code == 200, body
    finally:
        server.stop()
        engine.dispose()


async def test_a_worker_set_to_wait_does_not_poll_before_its_schema_is_there(
    namespace: TemporalNamespace, sqlite_url: str
) -> None:
    """LOREGUARD_WORKER_WAIT_FOR_SCHEMA (compose and deploy/k8s set it): on a database one migration behind, the
    worker is alive and not ready, and polls nothing; once migrated it polls (and says it is ready)."""
    from alembic.script import ScriptDirectory

    from data.migrate import alembic_config, head_revision, upgrade
    from workers.main import run_worker

    head = head_revision()
    previous = ScriptDirectory.from_config(alembic_config(sqlite_url)).get_revision(head).down_revision
    assert isinstance(previous, str)
    upgrade(sqlite_url, previous)
    port = free_port()
    settings = pipeline_settings(
        sqlite_url, namespace, health_port=port, metrics_port=0, worker_wait_for_schema=True
    )
    ready, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_worker(settings, ["loreguard-ingestion"], ready=ready, stop=stop))
    try:
        live = 0
        for _ in range(200):  # the worker connects to Temporal, then serves /health while it waits
            with contextlib.suppress(urllib.error.URLError):
                live, _ = await asyncio.to_thread(get, f"http://127.0.0.1:{port}/health/live")
            if live == 200:
                break
            await asyncio.sleep(0.1)
        assert live == 200
        code, body = await get_json(f"http://127.0.0.1:{port}/health/ready")
        assert code == 503 and body["failed"] == ["schema"], body
        client = await namespace.connect()
        described = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=namespace.name,
                task_queue=TaskQueue(name="loreguard-ingestion"),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
            )
        )
        assert not described.pollers and not ready.is_set()

        upgrade(sqlite_url)
        await asyncio.wait_for(ready.wait(), timeout=30)
        for _ in range(100):  # its pollers report in a moment after the worker starts
            code, body = await get_json(f"http://127.0.0.1:{port}/health/ready")
            if code == 200:
                break
            await asyncio.sleep(0.1)
        assert code == 200, body
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=60)


def test_live_fails_when_a_worker_stopped_polling(sqlite_sessions: sessionmaker[Session]) -> None:
    class Stopped:
        task_queue = "loreguard-processing"
        is_running = False

    checks = health_checks(None, [Stopped()], sqlite_sessions, asyncio.new_event_loop())  # type: ignore[arg-type,list-item]
    code, body = ObservabilityServer("127.0.0.1", 0, WorkerMetrics(), checks).live()
    assert code == 503
    assert "loreguard-processing" in body["checks"]["workers"]["error"]


def metric_total(text: str, name: str, **labels: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


@pytest.mark.slow
async def test_worker_process_with_cpu_pool_exports_both_endpoints(
    fresh_dev_server: DevServer, sqlite_sessions: sessionmaker[Session], sqlite_url: str, tmp_path: Path
) -> None:
    """`python -m workers`: chunks processed in the CPU pool are counted in the worker's own /metrics."""
    client = await Client.connect(fresh_dev_server.address)
    await register_search_attributes(client, "default")
    folder = tmp_path / "docs"
    write_corpus(folder, 12)
    with sqlite_sessions.begin() as session:
        source_id = repository.create_source(session, name="docs", kind="folder", location=str(folder)).id
    health_port, sdk_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOREGUARD_")}
    env.update(
        LOREGUARD_DATABASE_URL=sqlite_url,
        LOREGUARD_TEMPORAL_ADDRESS=fresh_dev_server.address,
        LOREGUARD_STATE_DIR=str(tmp_path / "state"),
        LOREGUARD_HEALTH_PORT=str(health_port),
        LOREGUARD_METRICS_PORT=str(sdk_port),
        LOREGUARD_PROCESSING_PROCESSES="1",
        LOREGUARD_CHUNK_SIZE="5",
        LOREGUARD_FOLDER_ROOTS=json.dumps([str(tmp_path)]),
    )
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "workers"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert worker.poll() is None, log.read_text(errors="replace")
            with contextlib.suppress(OSError):
                if (await asyncio.to_thread(get, f"http://127.0.0.1:{health_port}/health/ready"))[0] == 200:
                    break
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            await asyncio.sleep(0.2)
        _, handle = await start_refresh(client, sqlite_sessions, source_id=source_id)
        assert (await asyncio.wait_for(handle.result(), 120)).stored == 12

        _, body = await asyncio.to_thread(get, f"http://127.0.0.1:{health_port}/metrics")
        text = body.decode()
        source = str(source_id)
        assert metric_total(text, "loreguard_documents_processed_total", stage="process", source=source) == 12
        assert (
            metric_total(text, "loreguard_documents_processed_total", stage="evaluate", source=source) == 12
        )
        assert metric_total(text, "loreguard_stage_latency_milliseconds_count", stage="normalize") == 12
        _, sdk = await asyncio.to_thread(get, f"http://127.0.0.1:{sdk_port}/metrics")
        assert "temporal_" in sdk.decode()
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
