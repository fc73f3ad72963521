"""Actions on sources: register (after an optional dry run), pause, resume, change the interval, delete.

Each action checks its input, writes in one transaction with its audit event, then makes the source's Temporal
Schedule match the database. When Temporal is down the change stands and the result carries a warning: the
schedule follows when `loreguard up` reconciles every schedule on start.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session
from temporalio.client import Client
from temporalio.service import RPCError

from core.errors import ErrorType
from core.roles import Permission
from core.urls import CREDENTIALS_REFUSAL, has_userinfo, hide_userinfo_in_logs, without_userinfo
from core.vocabulary import SKIPPED_OVER_LIMIT, SOURCE_KINDS
from data import repository
from data.models import Source
from guard.folders import folder_roots
from guard.locations import validate_location
from guard.netpolicy import AddressPolicy
from operations.access import require
from operations.context import Actor, Context
from operations.errors import Refused, Unreachable
from orchestration.gateway import TemporalUnavailable
from orchestration.schedules import ensure_all_schedules, sync_source_schedule

if TYPE_CHECKING:  # the gathering code is imported only by a dry run (see preview)
    from guard.gather import FolderCount

MIN_INTERVAL = 60
MAX_NAME = 200  # the column's length
_CONTROL_CATEGORIES = ("Cc", "Cf", "Zl", "Zp")  # controls, invisible format characters, line separators
PREVIEW_DOCUMENTS = 5
SCHEDULE_TIMEOUT = 10.0  # seconds for one schedule change, SDK retries included

SourceRef = int | str  # an id, or a name (or the id's digits) as typed on a command line


@dataclass(frozen=True)
class SourceDraft:
    """A source as typed into a form or on a command line, checked and cleaned (folders made absolute)."""

    name: str
    kind: str
    location: str
    interval: int


@dataclass(frozen=True)
class SourceChanged:
    """What a source action did: the message to show, and a warning when the schedule could not follow yet."""

    source_id: int
    name: str
    message: str
    warning: str | None = None


@dataclass(frozen=True)
class PreviewRow:
    """One document of a dry run, after normalize and extract (`problem` says where it would fail)."""

    title: str | None
    uri: str
    content_type: str
    size: int
    language: str | None
    words: int | None
    problem: str


@dataclass(frozen=True)
class DryRun:
    """A dry run: the first documents, and for a folder how many files it holds and what a batch would skip."""

    rows: list[PreviewRow]
    files: int | None = None  # a folder's files (hidden files and folders are never read)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> what a batch would not gather

    @property
    def summary(self) -> str | None:
        """'The folder holds 12 file(s); a batch would skip 3: unsupported file type .xyz (2), ...'."""
        if self.files is None:
            return None
        text = f"The folder holds {self.files:,} file(s) (hidden ones are never read)"
        if not self.skipped:
            return text + "; a batch would gather every one."
        listed = ", ".join(f"{reason} ({n:,})" for reason, n in self.skipped.items())
        return text + f"; a batch would skip {sum(self.skipped.values()):,}: {listed}."


def check_source(ctx: Context, *, name: str, kind: str, location: str, interval: int) -> SourceDraft:
    """The cleaned draft, or Refused listing every problem (one per line, each naming its field)."""
    problems: list[str] = []
    name = name.strip()
    name_problem = name_problem_of(name)
    if name_problem:
        problems.append(f"Name: {name_problem}")
    else:
        with ctx.sessions() as session:
            if repository.source_name_taken(session, name=name):
                problems.append(f"Name: a source named {name!r} already exists.")
    cleaned = location.strip()
    if kind not in SOURCE_KINDS:
        problems.append(f"Kind: choose one of {', '.join(SOURCE_KINDS)}.")
    else:
        try:
            cleaned = validate_location(
                kind,
                location,
                folder_roots=folder_roots(ctx.settings),
                policy=AddressPolicy.allowing(ctx.settings.allowed_hosts),
            )
        except ValueError as exc:
            problems.append(f"Location: {exc}.")
    if interval < MIN_INTERVAL:
        problems.append(f"Refresh interval: at least {MIN_INTERVAL} seconds (got {interval}).")
    if problems:
        raise Refused("\n".join(problems))
    return SourceDraft(name=name, kind=kind, location=cleaned, interval=interval)


def name_problem_of(name: str) -> str | None:
    """What is wrong with a (stripped) source name, or None: the one rule for every front end."""
    if not name:
        return "a source needs a name."
    if len(name) > MAX_NAME:
        return f"at most {MAX_NAME} characters (got {len(name)})."
    control = next((ch for ch in name if unicodedata.category(ch) in _CONTROL_CATEGORIES), None)
    if control is not None:
        return f"no control characters such as tabs, line breaks or escapes (found {control!r})."
    if name.isdigit():
        # `loreguard source delete 2` must mean source id 2, never a source named "2".
        return "not only digits: commands take a source's id or its name, so add a letter."
    return None


def preview(actor: Actor, ctx: Context, draft: SourceDraft, *, limit: int = PREVIEW_DOCUMENTS) -> DryRun:
    """A dry run: the first documents the source yields, passed through normalize and extract, and for a
    folder what a batch would skip and why. Saves nothing."""
    require(
        actor, ctx, Permission.MANAGE_SOURCES, action="preview_source", target=f"new source {draft.name!r}"
    )
    # Imported here: gathering (feedparser among it) costs the dashboard ~11 MB, and only a dry run needs it
    # (checking a location does not). The documents are parsed in a confined child, never in this process.
    from guard.confined import ConfinedFailure, ParseLimits, preload, run_confined
    from guard.fetching import Fetcher
    from guard.gather import FolderCount, SourceError, preview_source

    _refuse_credentials(draft)
    hide_userinfo_in_logs()
    processing = ctx.worker_processing()
    preload(*processing.CHILD_MODULES)
    settings = ctx.settings
    # The dashboard parses nothing itself: the feed and the documents are parsed in short-lived processes
    # under the worker's memory and time limits, so a hostile source cannot take the dashboard down.
    per_document = settings.document_time_limit_seconds
    found = FolderCount()
    try:
        with Fetcher.from_settings(settings) as fetcher:  # the same address policy and limits as the worker
            documents = preview_source(
                draft.kind,
                draft.location,
                fetcher,
                folder_roots=folder_roots(settings),
                limit=limit,
                max_bytes=settings.max_document_bytes,
                limits=ParseLimits(settings.parse_memory_mb, per_document),
                allow_hard_links=settings.folder_allow_hard_links,
                count=found,
            )
    except SourceError as exc:
        if exc.kind in (ErrorType.SOURCE_UNAVAILABLE, ErrorType.FETCH_DEADLINE):  # may come back
            raise Unreachable(f"The source cannot be reached now: {exc.message}") from exc
        raise Refused(f"The source cannot be read: {exc.message}") from exc
    folder = _folder_skips(found, settings.max_documents_per_batch) if draft.kind == "folder" else {}
    if not documents:
        return DryRun([], **folder)
    try:
        results = run_confined(
            processing.parse_each,
            (documents, settings.max_pdf_pages, per_document),
            # Each document is stopped at its own limit inside; this bounds the whole run if that fails.
            limits=ParseLimits(settings.parse_memory_mb, per_document * (len(documents) + 1)),
            what="parsing the documents",
        )
    except ConfinedFailure as exc:
        results = processing.failed_everywhere(documents, exc.reason)
    rows = []
    for doc, result in zip(documents, results, strict=True):
        meta = result.metadata
        rows.append(
            PreviewRow(
                title=meta.title if meta else None,
                uri=doc.uri,
                content_type=doc.content_type,
                size=len(doc.data),
                language=meta.language if meta else None,
                words=meta.word_count if meta else None,
                problem="" if result.ok else f"{result.failed_stage}: {result.error}",
            )
        )
    return DryRun(rows, **folder)


def _folder_skips(found: FolderCount, limit: int) -> dict[str, Any]:
    """DryRun's folder fields from a listing's count: its files, and what a batch would skip (files of an
    unsupported type, most first; readable ones over the per-batch limit)."""
    skipped = dict(sorted(found.skipped.items(), key=lambda item: (-item[1], item[0])))
    over = found.files - sum(skipped.values()) - limit
    if over > 0:
        skipped[SKIPPED_OVER_LIMIT] = over
    return {"files": found.files, "skipped": skipped}


def _refuse_credentials(draft: SourceDraft) -> None:
    """check_source refuses them already; a draft built by hand (a script) meets the same rule here."""
    if draft.kind in ("feed", "web") and has_userinfo(draft.location):
        raise Refused(f"Location: {without_userinfo(draft.location)}: {CREDENTIALS_REFUSAL}.")


def register_source(actor: Actor, ctx: Context, draft: SourceDraft) -> SourceChanged:
    """Save a checked draft with its audit event and create its schedule."""
    require(actor, ctx, Permission.MANAGE_SOURCES, action="add_source", target=f"new source {draft.name!r}")
    _refuse_credentials(draft)
    with ctx.sessions.begin() as session:
        try:
            source = repository.create_source(
                session,
                name=draft.name,
                kind=draft.kind,
                location=draft.location,
                refresh_interval_seconds=draft.interval,
            )
        except ValueError as exc:  # a concurrent registration took the name, or the repository's own checks
            raise Refused(str(exc)) from exc
        repository.record_audit(
            session,
            actor=actor.name,
            action="add_source",
            target=f"source:{source.id}",
            target_name=draft.name,
            reason=f"{draft.kind} {draft.location}, every {draft.interval} s",
        )
        source_id = source.id
    return SourceChanged(
        source_id,
        draft.name,
        f"source {source_id} {draft.name!r} added: {draft.kind} {draft.location}, every {draft.interval} s",
        sync_schedule(ctx, source_id),
    )


def pause_source(actor: Actor, ctx: Context, source: SourceRef) -> SourceChanged:
    """Stop the source's scheduled refreshes (a refresh started by hand still runs)."""
    return _set_paused(actor, ctx, source, paused=True)


def resume_source(actor: Actor, ctx: Context, source: SourceRef) -> SourceChanged:
    return _set_paused(actor, ctx, source, paused=False)


def _set_paused(actor: Actor, ctx: Context, ref: SourceRef, *, paused: bool) -> SourceChanged:
    action = "pause_source" if paused else "resume_source"
    require(actor, ctx, Permission.MANAGE_SOURCES, action=action, target=f"source:{ref}")

    def change(session: Session, source: Source) -> str:
        if bool(source.paused) != paused:
            source.paused = paused
            repository.record_audit(
                session,
                actor=actor.name,
                action="pause_source" if paused else "resume_source",
                target=f"source:{source.id}",
                target_name=source.name,
            )
        return f"source {source.id} {source.name!r} {'paused' if paused else 'resumed'}"

    return _change(ctx, ref, change)


def set_source_interval(actor: Actor, ctx: Context, source: SourceRef, seconds: int) -> SourceChanged:
    """Refresh the source every `seconds` (at least MIN_INTERVAL) on its schedule."""
    require(actor, ctx, Permission.MANAGE_SOURCES, action="set_interval", target=f"source:{source}")
    if seconds < MIN_INTERVAL:
        raise Refused(f"The refresh interval must be at least {MIN_INTERVAL} seconds (got {seconds}).")

    def change(session: Session, found: Source) -> str:
        before = found.refresh_interval_seconds
        if before != seconds:
            found.refresh_interval_seconds = seconds
            repository.record_audit(
                session,
                actor=actor.name,
                action="set_interval",
                target=f"source:{found.id}",
                target_name=found.name,
                reason=f"{before} s -> {seconds} s",
            )
        return f"source {found.id} {found.name!r} refreshes every {seconds} s"

    return _change(ctx, source, change)


def delete_source(actor: Actor, ctx: Context, source: SourceRef) -> SourceChanged:
    """Delete the source with its batches, documents and schedule; refused while one of its batches is in flight."""
    require(actor, ctx, Permission.DELETE_SOURCES, action="delete_source", target=f"source:{source}")

    def change(session: Session, found: Source) -> str:
        busy = repository.batch_in_flight(session, source_id=found.id)
        if busy is not None:
            raise Refused(
                f"source {found.name!r} has batch {busy} in flight; "
                "wait for it to finish (or reject it) before deleting"
            )
        name = found.name
        repository.delete_source(session, source_id=found.id)
        repository.record_audit(
            session,
            actor=actor.name,
            action="delete_source",
            target=f"source:{found.id}",
            target_name=name,
            reason=f"deleted {name!r}",
        )
        return f"source {found.id} {name!r} deleted"

    return _change(ctx, source, change)


def find(session: Session, ref: SourceRef) -> Source:
    """The source an id or a name refers to, or Refused saying there is none."""
    try:
        if isinstance(ref, int):
            return repository.get_source(session, source_id=ref)
        return repository.find_source(session, ref=ref.strip())
    except repository.NotFound as exc:
        raise Refused(str(exc)) from exc


def _change(ctx: Context, ref: SourceRef, change: Callable[[Session, Source], str]) -> SourceChanged:
    """Apply `change` to the source in one transaction, then make its schedule match."""
    with ctx.sessions.begin() as session:
        source = find(session, ref)
        source_id, name = source.id, source.name
        message = change(session, source)
    return SourceChanged(source_id, name, message, sync_schedule(ctx, source_id))


def sync_schedule(ctx: Context, source_id: int) -> str | None:
    """Make the source's schedule match the database (gone with the source); a warning when it could not."""
    with ctx.sessions() as session:
        found = session.get(Source, source_id)
        wanted = None if found is None else (found.refresh_interval_seconds, bool(found.paused))

    async def apply(client: Client) -> None:
        await sync_source_schedule(client, source_id=source_id, wanted=wanted)

    try:
        ctx.temporal.call(apply, timeout=SCHEDULE_TIMEOUT)
    except (TemporalUnavailable, RPCError) as exc:
        reason = exc.message if isinstance(exc, RPCError) else str(exc)
        return (
            f"the schedule of source {source_id} was not updated ({reason}); "
            "`loreguard up` will reconcile it when Temporal is back"
        )
    return None


def reconcile_schedules(ctx: Context) -> tuple[int, list[int]]:
    """Every source's schedule matches the database, the SLA monitor has its own, orphans are deleted.

    Returns (sources reconciled, ids of orphan schedules deleted). Raises TemporalUnavailable when Temporal is down.
    """
    with ctx.sessions() as session:
        rows = repository.source_schedules(session)

    async def ensure(client: Client) -> list[int]:
        return await ensure_all_schedules(client, rows, ctx.settings)

    return len(rows), ctx.temporal.call(ensure, timeout=60.0)
