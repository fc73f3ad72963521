"""Workers page: a real backlog on a queue nobody polls; replica recommendation; rates from Prometheus or the DB."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from streamlit.testing.v1 import AppTest
from temporalio.client import Client

from cli.devserver import DevServer, free_port
from core.settings import Settings
from dashboard import metrics
from dashboard.task_queues import recommended_replicas
from data import repository
from data.models import QueueSample
from orchestration.celery_app import PROCESS_TASK, make_celery_app
from orchestration.constants import ALL_QUEUES, SCHEDULER_QUEUE
from tests.conftest import REDIS_URL, need, redis_available
from tests.dashboard.conftest import OpenPage
from tests.dashboard.seed import Seeded
from tests.support.batches import celery_worker, purge_celery_queue


@pytest.mark.parametrize(
    ("backlog", "per", "lo", "hi", "expected"),
    [
        (None, 100, 1, 20, 1),
        (0, 100, 1, 20, 1),
        (1, 100, 1, 20, 1),
        (100, 100, 1, 20, 1),
        (101, 100, 1, 20, 2),
        (950, 100, 1, 20, 10),
        (2000, 100, 1, 20, 20),
        (10_000, 100, 1, 20, 20),
        (0, 100, 0, 20, 0),
        (0, 100, 3, 20, 3),
        (250, 50, 1, 4, 4),
        (-5, 100, 1, 20, 1),
    ],
)
def test_recommended_replicas(backlog: int | None, per: int, lo: int, hi: int, expected: int) -> None:
    assert recommended_replicas(backlog, per_replica=per, minimum=lo, maximum=hi) == expected


@pytest.mark.temporal
def test_workers_page_shows_a_real_backlog_on_a_queue_nobody_polls(
    fresh_dev_server: DevServer,
    monkeypatch: pytest.MonkeyPatch,
    seeded: Seeded,
    open_page: OpenPage,
    dashboard_env: sessionmaker[Session],
) -> None:
    session_factory = dashboard_env
    monkeypatch.setenv("LOREGUARD_TEMPORAL_ADDRESS", fresh_dev_server.address)
    monkeypatch.setenv("LOREGUARD_TASKS_PER_REPLICA", "2")

    async def start(n: int) -> None:
        client = await Client.connect(fresh_dev_server.address)
        for i in range(n):
            await client.start_workflow("BatchWorkflow", id=f"workers-page-{i}", task_queue=SCHEDULER_QUEUE)

    asyncio.run(start(5))
    # What the workers' backlog monitor recorded earlier (workers/task_queues.py): the page only draws it.
    recorded = seed_backlog_history(session_factory, [(SCHEDULER_QUEUE, 5), (SCHEDULER_QUEUE, 2)])
    deadline = time.monotonic() + 30
    while True:  # the server's statistics lag a few seconds; the gateway may still be connecting
        at = open_page("workers")
        if len(at.dataframe) >= 2:
            queues = frame_with(at, "pollers")  # per queue and task type
            row = queues[(queues["queue"] == SCHEDULER_QUEUE) & (queues["type"] == "workflow")].iloc[0]
            if row["backlog"] == 5:
                break
        if time.monotonic() > deadline:
            assert at.dataframe, f"no task-queue table; warnings: {[w.value for w in at.warning]}"
            break
        time.sleep(1)

    assert sorted(set(queues["queue"])) == sorted(ALL_QUEUES)
    assert row["backlog"] == 5
    assert row["pollers"] == 0
    assert row["oldest (s)"] > 0
    idle = queues[queues["queue"] != SCHEDULER_QUEUE]
    assert (idle["backlog"] == 0).all()
    assert "recommended replicas" not in queues
    assert all("polls/s" not in d.value for d in at.dataframe)  # a poller's rate was its rate limit
    # One recommendation per queue, on the type KEDA counts (workflow tasks for the scheduler), and it weighs
    # the backlog's age: nobody polls a queue whose tasks wait.
    advice = frame_with(at, "advice")
    assert sorted(advice["queue"]) == sorted(ALL_QUEUES)
    scheduler = advice[advice["queue"] == SCHEDULER_QUEUE].iloc[0]
    assert scheduler["type"] == "workflow" and scheduler["recommended replicas"] == 3  # ceil(5 / 2)
    assert (advice[advice["queue"] != SCHEDULER_QUEUE]["recommended replicas"] == 1).all()
    assert any("No worker is polling" in i.value for i in at.info)
    # The backlog history the workers keep in the app database, drawn with real time axes (plotly, not altair).
    chart = json.loads(at.get("plotly_chart")[-1].proto.spec)
    assert chart["layout"]["xaxis"]["type"] == "date"
    assert chart["layout"]["xaxis"]["title"]["text"] == "time (UTC)"
    assert chart["layout"]["yaxis"]["tickformat"] == ",d"
    assert chart["layout"]["yaxis"]["range"][1] >= 5  # whole tasks, never ticks of 0.2
    start, end = (pd.Timestamp(x) for x in chart["layout"]["xaxis"]["range"])
    assert end - start == pd.Timedelta(hours=6)  # the window, not one sample's second
    with session_factory() as session:  # however often the page looked at the queues, it recorded nothing
        assert session.scalar(select(func.count()).select_from(QueueSample)) == recorded
    # No Prometheus configured: rates and latencies come from the library database.
    assert any("library database" in c.value for c in at.caption)
    assert not at.warning


def seed_backlog_history(sessions: sessionmaker[Session], backlogs: list[tuple[str, int]]) -> int:
    """One sample a minute apart per (queue, backlog), the last a minute ago, as the workers' monitor stores
    them; returns the number of rows."""
    now = datetime.now(UTC)
    with sessions.begin() as session:
        for i, (queue, backlog) in enumerate(backlogs):
            repository.record_queue_samples(
                session,
                at=now - timedelta(minutes=len(backlogs) - i),
                samples=[(queue, "workflow", backlog, 1.0)],
                every=timedelta(0),
                keep=timedelta(days=1),
            )
    return len(backlogs)


def test_workers_page_draws_the_backlog_the_workers_recorded_and_records_none(
    dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    recorded = seed_backlog_history(dashboard_env, [(SCHEDULER_QUEUE, 3), (SCHEDULER_QUEUE, 7)])

    at = open_page("workers")

    chart = json.loads(at.get("plotly_chart")[-1].proto.spec)
    (trace,) = chart["data"]
    assert trace["name"] == SCHEDULER_QUEUE and len(trace["x"]) == 2
    assert chart["layout"]["yaxis"]["range"][1] >= 7
    assert any("by the worker serving the scheduler queue" in c.value for c in at.caption)
    with dashboard_env() as session:
        assert session.scalar(select(func.count()).select_from(QueueSample)) == recorded


def test_workers_page_without_history_says_who_records_it(dashboard_env: object, open_page: OpenPage) -> None:
    at = open_page("workers")
    assert not at.get("plotly_chart")
    assert any(
        "No backlog recorded yet: the worker serving the scheduler queue samples it every 30 s" in c.value
        for c in at.caption
    )


def frame_with(at: AppTest, column: str) -> pd.DataFrame:
    (frame,) = [d.value for d in at.dataframe if column in d.value]
    return frame


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers: the worst case for a dashboard page."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    stop = threading.Event()
    yield int(sock.getsockname()[1])
    stop.set()
    sock.close()


def test_unreachable_prometheus_is_given_up_on_and_named(silent_port: int) -> None:
    # The page does not wait on a silent Prometheus: the call gives up within its budget and says why
    # (how long that takes is measured in bench/, not asserted here).
    rates = metrics.from_prometheus(f"http://127.0.0.1:{silent_port}", budget=1.0)
    assert not rates.available
    assert rates.error == f"Prometheus at http://127.0.0.1:{silent_port}: no answer within the time limit"

    port = free_port()
    refused = metrics.from_prometheus(f"http://127.0.0.1:{port}", budget=1.0)
    assert not refused.available
    assert refused.error == f"Prometheus at http://127.0.0.1:{port}: connection refused"


def test_workers_page_shows_prometheus_unavailable(
    monkeypatch: pytest.MonkeyPatch, silent_port: int, dashboard_env: object, open_page: OpenPage
) -> None:
    monkeypatch.setenv("LOREGUARD_PROMETHEUS_URL", f"http://127.0.0.1:{silent_port}")
    at = open_page("workers")
    warnings = " ".join(w.value for w in at.warning)
    assert "Prometheus unavailable" in warnings
    assert "Temporal" in warnings  # no Temporal in this test either; the page still renders


def test_workers_page_shows_the_celery_queue_and_its_workers_when_the_hybrid_runs(
    monkeypatch: pytest.MonkeyPatch, dashboard_env: object, open_page: OpenPage
) -> None:
    need(redis_available(), f"Redis at {REDIS_URL} (the Celery broker)")
    queue = f"processing-test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("LOREGUARD_PROCESSING_BACKEND", "celery")
    monkeypatch.setenv("LOREGUARD_CELERY_BROKER_URL", REDIS_URL)
    monkeypatch.setenv("LOREGUARD_CELERY_QUEUE", queue)
    settings = Settings()
    app = make_celery_app(settings)
    for seq in range(3):  # three tasks waiting, nobody consuming them
        app.send_task(PROCESS_TASK, args=(1, seq, seq + 1), queue=queue)

    at = open_page("workers")
    celery = next(d.value for d in at.dataframe if "pending tasks" in d.value.columns)
    row = celery.iloc[0]
    assert (row["queue"], row["broker"], row["pending tasks"], row["workers"]) == (queue, REDIS_URL, 3, 0)
    assert any("No Celery worker consumes" in i.value for i in at.info)

    purge_celery_queue(settings)
    with celery_worker(settings, concurrency=1):
        at = open_page("workers")
    celery = next(d.value for d in at.dataframe if "pending tasks" in d.value.columns)
    assert (celery.iloc[0]["pending tasks"], celery.iloc[0]["workers"]) == (0, 1)
    workers = next(d.value for d in at.dataframe if "processes" in d.value.columns)
    assert len(workers) == 1 and workers.iloc[0]["worker"].startswith("gen")  # Celery's test worker name
