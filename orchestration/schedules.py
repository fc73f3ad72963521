"""Temporal Schedules: one refresh schedule per source (overlap skip) and the SLA monitor's schedule.

The app database holds each source's interval and paused flag (the truth people edit); the operations layer
reads it and these helpers make the source's schedule match. Every helper is idempotent, so `loreguard up` can reconcile all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from core.settings import Settings
from orchestration.constants import (
    SCHEDULED_REFRESH_WORKFLOW_ID,
    SCHEDULER_QUEUE,
    SLA_MONITOR_WORKFLOW_ID,
    SLA_SCHEDULE_ID,
    source_schedule_id,
)
from orchestration.types import ScheduledRefreshInput, SlaMonitorInput

__all__ = [
    "ScheduleTimes",
    "delete_source_schedule",
    "describe_source_schedule",
    "ensure_all_schedules",
    "ensure_sla_schedule",
    "ensure_source_schedule",
    "pause_source_schedule",
    "source_schedule_id",
    "trigger_source_schedule",
    "unpause_source_schedule",
]


@dataclass(frozen=True)
class ScheduleTimes:
    """What a schedule reports: its next run (None while paused) and its last run, if any."""

    schedule_id: str
    paused: bool
    interval_seconds: int | None
    next_run: datetime | None
    last_run: datetime | None
    runs: int


def _not_found(err: RPCError) -> bool:
    return err.status == RPCStatusCode.NOT_FOUND


def _refresh_schedule(source_id: int, interval_seconds: int, paused: bool) -> Schedule:
    interval = timedelta(seconds=interval_seconds)
    return Schedule(
        action=ScheduleActionStartWorkflow(
            "ScheduledRefreshWorkflow",
            ScheduledRefreshInput(source_id=source_id),
            id=SCHEDULED_REFRESH_WORKFLOW_ID.format(source_id=source_id),
            task_queue=SCHEDULER_QUEUE,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=interval)]),
        # Skip a refresh while the previous one of the source is in flight; after downtime run at most one
        # missed refresh (within one interval), not every missed one.
        policy=SchedulePolicy(
            overlap=ScheduleOverlapPolicy.SKIP, catchup_window=max(interval, timedelta(minutes=1))
        ),
        state=ScheduleState(paused=paused, note="paused in LoreGuard" if paused else None),
    )


async def _ensure(client: Client, schedule_id: str, schedule: Schedule) -> ScheduleHandle:
    """Create the schedule, or make an existing one match `schedule` (spec, action, policy, paused)."""
    try:
        return await client.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:
        pass
    handle = client.get_schedule_handle(schedule_id)

    def replace(current: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=schedule)

    await handle.update(replace)
    current = (await handle.describe()).schedule.state
    if current.paused != schedule.state.paused:
        if schedule.state.paused:
            await handle.pause(note=schedule.state.note)
        else:
            await handle.unpause()
    return handle


async def ensure_source_schedule(
    client: Client, *, source_id: int, interval_seconds: int, paused: bool = False
) -> ScheduleHandle:
    """The source's refresh schedule, created or updated to this interval and paused state (idempotent)."""
    return await _ensure(
        client, source_schedule_id(source_id), _refresh_schedule(source_id, interval_seconds, paused)
    )


async def pause_source_schedule(client: Client, *, source_id: int, note: str = "paused in LoreGuard") -> None:
    await client.get_schedule_handle(source_schedule_id(source_id)).pause(note=note)


async def unpause_source_schedule(client: Client, *, source_id: int) -> None:
    await client.get_schedule_handle(source_schedule_id(source_id)).unpause()


async def trigger_source_schedule(client: Client, *, source_id: int) -> None:
    """Run the schedule's action now (skipped, like any run, while a refresh of the source is in flight)."""
    await client.get_schedule_handle(source_schedule_id(source_id)).trigger()


async def delete_source_schedule(client: Client, *, source_id: int) -> bool:
    """Delete the source's schedule; False when there was none (idempotent)."""
    try:
        await client.get_schedule_handle(source_schedule_id(source_id)).delete()
    except RPCError as err:
        if _not_found(err):
            return False
        raise
    return True


async def sync_source_schedule(client: Client, *, source_id: int, wanted: tuple[int, bool] | None) -> None:
    """Make the source's schedule match `wanted` (interval seconds, paused), or delete it when None."""
    if wanted is None:
        await delete_source_schedule(client, source_id=source_id)
    else:
        await ensure_source_schedule(
            client, source_id=source_id, interval_seconds=wanted[0], paused=wanted[1]
        )


async def describe_source_schedule(client: Client, *, source_id: int) -> ScheduleTimes | None:
    """Next and last run of the source's schedule; None when it has none."""
    schedule_id = source_schedule_id(source_id)
    try:
        desc = await client.get_schedule_handle(schedule_id).describe()
    except RPCError as err:
        if _not_found(err):
            return None
        raise
    info, state = desc.info, desc.schedule.state
    intervals = desc.schedule.spec.intervals
    recent = info.recent_actions
    return ScheduleTimes(
        schedule_id=schedule_id,
        paused=state.paused,
        interval_seconds=int(intervals[0].every.total_seconds()) if intervals else None,
        next_run=None if state.paused or not info.next_action_times else info.next_action_times[0],
        last_run=recent[-1].started_at if recent else None,
        runs=info.num_actions,
    )


async def describe_source_schedules(client: Client, source_ids: list[int]) -> dict[int, ScheduleTimes]:
    """Schedule times per source id (sources without a schedule are left out)."""
    described = await asyncio.gather(
        *(describe_source_schedule(client, source_id=source_id) for source_id in source_ids)
    )
    return {source_id: times for source_id, times in zip(source_ids, described, strict=True) if times}


async def ensure_sla_schedule(client: Client, settings: Settings) -> ScheduleHandle:
    """The SLA monitor's schedule: every `sla_check_minutes`, overlap skip (idempotent)."""
    every = timedelta(minutes=settings.sla_check_minutes)
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            "SlaMonitorWorkflow",
            SlaMonitorInput(),
            id=SLA_MONITOR_WORKFLOW_ID,
            task_queue=SCHEDULER_QUEUE,
            execution_timeout=max(every, timedelta(minutes=5)),
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=every),
    )
    return await _ensure(client, SLA_SCHEDULE_ID, schedule)


async def ensure_all_schedules(
    client: Client, sources: Sequence[tuple[int, int, bool]], settings: Settings
) -> list[int]:
    """Every source in `sources` (id, interval seconds, paused) has its schedule matching, the SLA monitor has
    its own, and schedules of sources not listed are gone. Returns the ids of orphan schedules deleted."""
    for source_id, interval, paused in sources:
        await ensure_source_schedule(client, source_id=source_id, interval_seconds=interval, paused=paused)
    await ensure_sla_schedule(client, settings)
    known = {source_schedule_id(source_id) for source_id, *_ in sources}
    orphans: list[int] = []
    async for listed in await client.list_schedules():
        if listed.id.startswith("source-") and listed.id.endswith("-refresh") and listed.id not in known:
            with contextlib.suppress(ValueError):
                orphan = int(listed.id.removeprefix("source-").removesuffix("-refresh"))
                if await delete_source_schedule(client, source_id=orphan):
                    orphans.append(orphan)
    return orphans
