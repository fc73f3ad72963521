"""A source's schedule through its life on the real dev server, driven by the operations layer's source actions.

Register creates it, the interval edit updates it, pause/resume act on it, a trigger runs a real batch
(trigger "schedule", started by the schedule), delete removes it; `loreguard up`'s reconciliation is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError

from core.roles import Role
from core.vocabulary import BatchStatus
from dashboard import sources
from data.models import Batch
from operations import Actor, Context
from operations import sources as source_ops
from orchestration.constants import SLA_SCHEDULE_ID, source_schedule_id
from orchestration.gateway import TemporalGateway
from orchestration.schedules import (
    ScheduleTimes,
    describe_source_schedule,
    ensure_source_schedule,
    trigger_source_schedule,
)
from tests.conftest import TemporalNamespace
from tests.support.batches import pipeline_settings, running_worker
from tests.support.corpus import write_corpus

pytestmark = pytest.mark.temporal
ACTOR = Actor("alice@example.org", frozenset({Role.ADMIN}))


async def times(client: Client, source_id: int) -> ScheduleTimes:
    found = await describe_source_schedule(client, source_id=source_id)
    assert found is not None, f"source {source_id} has no schedule"
    return found


async def test_schedule_follows_the_source_from_registration_to_deletion(
    namespace: TemporalNamespace, sqlite_sessions: sessionmaker[Session], sqlite_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    write_corpus(folder, 4)
    client = await namespace.connect()
    gateway = TemporalGateway(namespace.address, namespace.name)
    settings = pipeline_settings(sqlite_url, namespace)

    ctx = Context(settings, sqlite_sessions, gateway)
    source_id = -1

    def sync() -> str | None:  # what every source action does after its write (called off the event loop)
        return source_ops.sync_schedule(ctx, source_id)

    try:
        # register
        draft = source_ops.check_source(ctx, name="docs", kind="folder", location=str(folder), interval=3600)
        registered = await asyncio.to_thread(source_ops.register_source, ACTOR, ctx, draft)
        source_id = registered.source_id
        assert registered.warning is None
        t = await times(client, source_id)
        assert (t.schedule_id, t.interval_seconds, t.paused, t.last_run, t.runs) == (
            f"source-{source_id}-refresh",
            3600,
            False,
            None,
            0,
        )
        assert t.next_run is not None
        assert datetime.now(UTC) < t.next_run <= datetime.now(UTC) + timedelta(hours=1)

        # creating again is harmless and keeps one schedule
        await ensure_source_schedule(client, source_id=source_id, interval_seconds=3600)
        listed = [s.id async for s in await client.list_schedules() if s.id == source_schedule_id(source_id)]
        assert listed in ([source_schedule_id(source_id)], [])  # (visibility may lag; never two)

        # interval edit
        changed = await asyncio.to_thread(source_ops.set_source_interval, ACTOR, ctx, source_id, 120)
        assert changed.warning is None
        t = await times(client, source_id)
        assert t.interval_seconds == 120 and t.next_run is not None
        assert t.next_run <= datetime.now(UTC) + timedelta(seconds=120)

        # pause / resume
        await asyncio.to_thread(source_ops.pause_source, ACTOR, ctx, source_id)
        t = await times(client, source_id)
        assert t.paused and t.next_run is None
        await asyncio.to_thread(source_ops.resume_source, ACTOR, ctx, source_id)
        t = await times(client, source_id)
        assert not t.paused and t.next_run is not None and t.interval_seconds == 120

        # trigger: the schedule's workflow creates the batch row and runs the real batch
        async with running_worker(client, settings):
            await trigger_source_schedule(client, source_id=source_id)
            deadline = asyncio.get_running_loop().time() + 60
            while True:
                with sqlite_sessions() as session:
                    batch = session.scalars(select(Batch).where(Batch.source_id == source_id)).first()
                if batch is not None and batch.status == BatchStatus.COMPLETED:
                    break
                assert asyncio.get_running_loop().time() < deadline, f"batch never completed: {batch}"
                await asyncio.sleep(0.2)
            assert batch.trigger == "schedule" and batch.stored == 4
            assert batch.workflow_id is not None and batch.workflow_id.startswith(f"batch-{batch.id}-")
            t = await times(client, source_id)
            assert t.runs == 1 and t.last_run is not None
            scheduled = [
                wf.id
                async for wf in client.list_workflows(
                    f'TemporalScheduledById="{source_schedule_id(source_id)}"'
                )
            ]
            assert len(scheduled) <= 1  # (visibility may lag)
            if scheduled:
                assert scheduled[0].startswith(f"source-{source_id}-refresh")
            # The row says completed when finish_batch runs, a moment before the workflow closes.
            child = client.get_workflow_handle(batch.workflow_id)
            await asyncio.wait_for(child.result(), timeout=30)
            description = await child.describe()
            assert description.status is not None and description.status.name == "COMPLETED"

        # the Sources page reads next and last run through the dashboard's gateway
        shown = await asyncio.to_thread(sources.schedule_times, gateway, [source_id, source_id + 1000])
        assert shown is not None and set(shown) == {source_id}
        assert shown[source_id].last_run == t.last_run

        # `loreguard up`: every source gets its schedule, the SLA monitor its own; orphans go; idempotent
        await ensure_source_schedule(client, source_id=source_id + 1000, interval_seconds=600)
        removed: list[int] = []
        for _ in range(50):  # the schedule list (visibility) may lag a moment behind the create
            count, orphans = await asyncio.to_thread(source_ops.reconcile_schedules, ctx)
            assert count == 1
            removed += orphans
            if removed:
                break
            await asyncio.sleep(0.2)
        assert removed == [source_id + 1000]
        assert await describe_source_schedule(client, source_id=source_id + 1000) is None
        assert (await client.get_schedule_handle(SLA_SCHEDULE_ID).describe()).schedule.spec.intervals[
            0
        ].every == timedelta(minutes=5)
        assert (await times(client, source_id)).interval_seconds == 120

        # delete
        deleted = await asyncio.to_thread(source_ops.delete_source, ACTOR, ctx, source_id)
        assert deleted.name == "docs" and deleted.warning is None
        assert await describe_source_schedule(client, source_id=source_id) is None
        assert await asyncio.to_thread(sync) is None  # deleting again is harmless
    finally:
        for schedule_id in (source_schedule_id(source_id + 1000), SLA_SCHEDULE_ID):
            with contextlib.suppress(RPCError):  # already gone
                await client.get_schedule_handle(schedule_id).delete()
        await asyncio.to_thread(gateway.close)
