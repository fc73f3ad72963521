"""Operator actions on sources: register (after a dry run), refresh now, pause/resume, interval, delete.

Each action checks its input, does its work in one transaction and writes an audit event naming the operator
(settings.operator_name). A refused action raises ActionRefused with the message to show; nothing is half-done.
Each source has a Temporal Schedule (orchestration/schedules.py); after an action, `sync_schedule` makes it match
the database (interval, paused; gone with the source). When Temporal is down the action stands and the page says
the schedule will follow: `loreguard up` reconciles every schedule on start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError

from dashboard.temporal import TemporalGateway, TemporalUnavailable
from data import repository
from data.models import (
    BATCH_AWAITING_APPROVAL,
    BATCH_FAILED,
    BATCH_PENDING,
    BATCH_RETRYING,
    BATCH_RUNNING,
    SOURCE_KINDS,
    Batch,
    Source,
    utcnow,
)
from orchestration.client import start_refresh
from orchestration.schedules import (
    ScheduleTimes,
    describe_source_schedules,
    sync_source_schedule,
)
from orchestration.settings import Settings
from workers.stages.fetching import Fetcher
from workers.stages.folders import folder_roots
from workers.stages.gather import SourceError, preview_source, validate_location
from workers.stages.pipeline import run_cpu_stages

MIN_INTERVAL = 60
PREVIEW_DOCUMENTS = 5
ACTIVE_BATCH = (BATCH_PENDING, BATCH_RUNNING, BATCH_RETRYING, BATCH_AWAITING_APPROVAL)
NOT_STARTED = "NotStarted"


class ActionRefused(Exception):
    """An action that was not done, with the reason to show the operator."""


@dataclass(frozen=True)
class SourceDraft:
    """A source as typed into the register form, checked and cleaned (folder locations made absolute)."""

    name: str
    kind: str
    location: str
    interval: int


def check_draft(
    session: Session, *, name: str, kind: str, location: str, interval: int, folder_roots: Sequence[Path]
) -> SourceDraft:
    """The cleaned draft, or ActionRefused listing every problem (one per line)."""
    problems: list[str] = []
    name = name.strip()
    if not name:
        problems.append("Name: a source needs a name.")
    elif len(name) > 200:
        problems.append("Name: at most 200 characters.")
    elif session.scalar(select(func.count()).where(Source.name == name)):
        problems.append(f"Name: a source named {name!r} already exists.")
    if kind not in SOURCE_KINDS:
        problems.append(f"Kind: choose one of {', '.join(SOURCE_KINDS)}.")
        cleaned = location.strip()
    else:
        try:
            cleaned = validate_location(kind, location, folder_roots=folder_roots)
        except ValueError as exc:
            problems.append(f"Location: {exc}.")
            cleaned = location.strip()
    if interval < MIN_INTERVAL:
        problems.append(f"Refresh interval: at least {MIN_INTERVAL} seconds (got {interval}).")
    if problems:
        raise ActionRefused("\n".join(problems))
    return SourceDraft(name=name, kind=kind, location=cleaned, interval=interval)


PREVIEW_COLUMNS = ["title", "uri", "type", "bytes", "language", "words", "problem"]


def preview(draft: SourceDraft, settings: Settings, *, limit: int = PREVIEW_DOCUMENTS) -> pd.DataFrame:
    """A dry run: the first documents the source yields, passed through normalize and extract. Saves nothing."""
    try:
        with Fetcher.from_settings(settings) as fetcher:  # the same address policy and limits as the worker
            documents = preview_source(
                draft.kind,
                draft.location,
                fetcher,
                folder_roots=folder_roots(settings),
                limit=limit,
                max_bytes=settings.max_document_bytes,
            )
    except SourceError as exc:
        raise ActionRefused(f"The source cannot be read: {exc.message}") from exc
    rows = []
    for doc in documents:
        result = run_cpu_stages(doc, max_pdf_pages=settings.max_pdf_pages)
        meta = result.metadata
        rows.append(
            [
                meta.title if meta else None,
                doc.uri,
                doc.content_type,
                len(doc.data),
                meta.language if meta else None,
                meta.word_count if meta else None,
                "" if result.ok else f"{result.failed_stage}: {result.error}",
            ]
        )
    return pd.DataFrame(rows, columns=PREVIEW_COLUMNS)


def register(session: Session, draft: SourceDraft, *, actor: str) -> int:
    """Save the source and its audit event; returns the new source's id."""
    try:
        source = repository.create_source(
            session,
            name=draft.name,
            kind=draft.kind,
            location=draft.location,
            refresh_interval_seconds=draft.interval,
        )
    except ValueError as exc:  # DuplicateSourceName (a concurrent registration) and the repository's checks
        raise ActionRefused(str(exc)) from exc
    repository.record_audit(
        session,
        actor=actor,
        action="add_source",
        target=f"source:{source.id}",
        reason=f"{draft.kind} {draft.location}, every {draft.interval} s",
    )
    return source.id


def refresh(
    gateway: TemporalGateway, sessions: sessionmaker[Session], *, source_id: int, actor: str
) -> tuple[int, str]:
    """Start a batch of the source now; returns (batch id, workflow id). Audited by start_refresh."""
    with sessions() as session:
        _source(session, source_id)
        newest_before = session.scalar(select(func.max(Batch.id))) or 0

    async def start(client: Client) -> tuple[int, str]:
        batch_id, handle = await start_refresh(
            client, sessions, source_id=source_id, trigger="manual", actor=actor
        )
        return batch_id, handle.id

    try:
        return gateway.call(start, timeout=10.0)
    except (TemporalUnavailable, RPCError, TimeoutError) as exc:
        reason = str(exc) if isinstance(exc, TemporalUnavailable) else f"Temporal refused: {exc}"
        _close_unstarted(sessions, source_id=source_id, after_id=newest_before, reason=reason)
        raise ActionRefused(f"The refresh was not started. {reason}") from exc


def _close_unstarted(sessions: sessionmaker[Session], *, source_id: int, after_id: int, reason: str) -> None:
    """A batch row written for a workflow that never started ends failed with why, not pending forever.

    (If the start did reach Temporal after all, the workflow marks the batch running again and finishes it.)
    """
    with sessions.begin() as session:
        session.execute(
            update(Batch)
            .where(
                Batch.source_id == source_id,
                Batch.id > after_id,
                Batch.status == BATCH_PENDING,
                Batch.started_at.is_(None),
            )
            .values(
                status=BATCH_FAILED,
                error_type=NOT_STARTED,
                error_message=f"the workflow could not be started: {reason}",
                finished_at=utcnow(),
            )
        )


def _source(session: Session, source_id: int) -> Source:
    try:
        return repository.get_source(session, source_id=source_id)
    except repository.NotFound as exc:
        raise ActionRefused(f"Source {source_id} no longer exists.") from exc


def set_paused(session: Session, *, source_id: int, paused: bool, actor: str) -> None:
    source = _source(session, source_id)
    if source.paused == paused:
        return
    source.paused = paused
    repository.record_audit(
        session,
        actor=actor,
        action="pause_source" if paused else "resume_source",
        target=f"source:{source_id}",
    )


def set_interval(session: Session, *, source_id: int, interval: int, actor: str) -> None:
    if interval < MIN_INTERVAL:
        raise ActionRefused(f"The refresh interval must be at least {MIN_INTERVAL} seconds (got {interval}).")
    source = _source(session, source_id)
    before = source.refresh_interval_seconds
    if before == interval:
        return
    source.refresh_interval_seconds = interval
    repository.record_audit(
        session,
        actor=actor,
        action="set_interval",
        target=f"source:{source_id}",
        reason=f"{before} s -> {interval} s",
    )


def active_batch(session: Session, *, source_id: int) -> int | None:
    """A batch of the source that is still in flight (its workflow would lose its rows), if any."""
    return session.scalar(
        select(func.max(Batch.id)).where(Batch.source_id == source_id, Batch.status.in_(ACTIVE_BATCH))
    )


def delete(session: Session, *, source_id: int, actor: str) -> str:
    """Delete the source with its batches and documents; refused while one of its batches is in flight."""
    source = _source(session, source_id)
    name = source.name
    busy = active_batch(session, source_id=source_id)
    if busy is not None:
        raise ActionRefused(
            f"Source {name!r} has batch {busy} in flight; wait for it to finish (or reject it) before deleting."
        )
    repository.delete_source(session, source_id=source_id)
    repository.record_audit(
        session, actor=actor, action="delete_source", target=f"source:{source_id}", reason=f"deleted {name!r}"
    )
    return name


def sync_schedule(gateway: TemporalGateway, sessions: sessionmaker[Session], *, source_id: int) -> str | None:
    """Make the source's schedule match the database (deleted with the source); a message when it could not."""

    async def apply(client: Client) -> None:
        await sync_source_schedule(client, sessions, source_id=source_id)

    try:
        gateway.call(apply, timeout=10.0)
    except (TemporalUnavailable, RPCError, TimeoutError) as exc:
        return (
            f"The schedule of source {source_id} was not updated ({exc}); "
            "it will be when Temporal is back (`loreguard up` reconciles every schedule)."
        )
    return None


def schedule_times(gateway: TemporalGateway, source_ids: list[int]) -> dict[int, ScheduleTimes] | None:
    """Next and last run per source as its schedule reports them; None when Temporal does not answer."""

    async def describe(client: Client) -> dict[int, ScheduleTimes]:
        return await describe_source_schedules(client, source_ids)

    try:
        return gateway.call(describe, timeout=5.0)
    except (TemporalUnavailable, RPCError, TimeoutError):
        return None


def with_schedule_times(frame: pd.DataFrame, times: dict[int, ScheduleTimes] | None) -> pd.DataFrame:
    """The sources table with "next run" and "last run" columns (empty when Temporal is unavailable)."""
    frame = frame.copy()
    known = times or {}
    frame["next run"] = [known[i].next_run if i in known else None for i in frame["id"]]
    frame["last run"] = [known[i].last_run if i in known else None for i in frame["id"]]
    frame["next run"] = pd.to_datetime(frame["next run"], utc=True)
    frame["last run"] = pd.to_datetime(frame["last run"], utc=True)
    return frame


SUMMARY_COLUMNS = [
    "id",
    "name",
    "kind",
    "location",
    "every (s)",
    "paused",
    "batches",
    "documents",
    "errors",
    "last refresh",
    "last status",
]


def summary_frame(summaries: list[repository.SourceSummary]) -> pd.DataFrame:
    """The sources table: one row per source with its totals and last refresh."""
    return pd.DataFrame(
        [
            [
                s.id,
                s.name,
                s.kind,
                s.location,
                s.refresh_interval_seconds,
                s.paused,
                s.batches,
                s.documents,
                s.errors,
                s.last_refresh,
                s.last_status or "",
            ]
            for s in summaries
        ],
        columns=SUMMARY_COLUMNS,
    )
