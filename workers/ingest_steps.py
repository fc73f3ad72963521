"""The ingest step: gather a source's documents and record each with its sequence number (resumable)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, overload

from sqlalchemy.orm import Session
from temporalio.exceptions import ApplicationError  # the error type Temporal reports; no SDK state

from core.errors import ErrorType
from core.urls import CREDENTIALS_REFUSAL, has_userinfo, without_userinfo
from core.vocabulary import SKIPPED_OVER_LIMIT, ArtifactStatus, SourceKind, Stage
from data import repository
from data.models import utcnow
from guard.confined import ParseLimits
from guard.folders import folder_roots
from guard.gather import (
    FolderCount,
    SourceError,
    folder_names,
    gather_feed,
    gather_page,
    read_file,
)
from guard.incremental import FileStat, FolderPlan, Validators, plan_folder, raw_hash
from guard.types import DocumentError, RawDocument
from orchestration.types import (
    IngestInput,
    IngestResult,
)
from workers.steps_base import Heartbeat, StepsBase, no_heartbeat

log = logging.getLogger(__name__)

HEARTBEAT_EVERY = 1.0  # seconds: at least this often while documents are read
INSERT_BATCH = 500  # at most this many artifacts per ingest transaction (fewer when they weigh much)


def _given(doc: RawDocument) -> RawDocument:
    return doc


def _failing(err: DocumentError) -> RawDocument:
    raise err


Loader = tuple[Callable[[], RawDocument], FileStat | None]  # reads one document; a folder file's stat


class FolderLoaders(Sequence[Loader]):
    """A folder plan's loaders, made one at a time as ingest reaches each file: a list of them (a partial and
    a Path a file) cost the worker about a kilobyte per file, a hundred megabytes at 100,000 files."""

    def __init__(self, plan: FolderPlan, max_bytes: int, *, allow_hard_links: bool) -> None:
        self._plan, self._max_bytes, self._links = plan, max_bytes, allow_hard_links

    def __len__(self) -> int:
        return len(self._plan)

    @overload
    def __getitem__(self, index: int) -> Loader: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Loader]: ...
    def __getitem__(self, index: int | slice) -> Loader | Sequence[Loader]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        plan = self._plan
        read = partial(
            read_file, plan.path(index), self._max_bytes, folder=plan.folder, allow_hard_links=self._links
        )
        return read, plan.stat(index)


@dataclass
class Gathering:
    """What a source offers this refresh: a loader per document to record, in a stable order, and what an
    incremental refresh found without reading (files matching their sighting, sightings gone, a 304)."""

    loaders: Sequence[Loader] = field(default_factory=list)
    recognised: int = 0
    missing: list[str] = field(default_factory=list)
    not_modified: bool = False
    validators: Validators = field(default_factory=Validators)


def source_error(err: SourceError) -> ApplicationError:
    return ApplicationError(err.message, type=err.kind, non_retryable=not err.retryable)


class IngestSteps(StepsBase):
    def ingest_source(
        self, input: IngestInput, *, resume_from: int = 0, heartbeat: Heartbeat = no_heartbeat
    ) -> IngestResult:
        """Record the source's documents, at most LOREGUARD_MAX_DOCUMENTS_PER_BATCH; the rest, and a folder's
        files of a type the pipeline does not read, are counted as skipped with why.

        Incremental unless the batch is a full refresh: a feed or page is asked for conditionally with the
        validators of the last successful refresh (a 304 gathers nothing); a folder's file matching its last
        successful sighting is not read; a document whose URI and raw hash the source stored before is
        recorded unchanged at once, so no stage runs on it.
        """
        with self.sessions() as session:
            batch = repository.get_batch(session, batch_id=input.batch_id)
            source = repository.get_source(session, source_id=batch.source_id)
            kind, location, source_id, full = source.kind, source.location, source.id, bool(batch.full)
            earlier = Validators() if full else Validators(source.http_etag, source.http_last_modified)
            sightings = {}
            if kind == SourceKind.FOLDER:  # a full refresh reads every file, and still finds the deleted ones
                sightings = repository.load_sightings(session, source_id=source_id)

        def alive() -> None:
            # Listing and fetching commit nothing: the details keep the prior attempt's resume point.
            heartbeat(resume_from)

        found = FolderCount()
        try:
            gathering = self._gather(
                kind, location, alive, found, earlier=earlier, sightings=sightings, trust_sightings=not full
            )
            if kind == SourceKind.FOLDER:
                with self._tx() as session:
                    repository.mark_missing(
                        session, source_id=source_id, batch_id=input.batch_id, uris=gathering.missing
                    )
            documents = gathering.loaders
            limit = self.settings.max_documents_per_batch
            over = max(0, len(documents) - limit)
            failed = self._write_ingested(
                input.batch_id,
                source_id,
                documents,
                min(len(documents), limit),
                resume_from,
                heartbeat,
                recognise=not full,
            )
        except SourceError as err:
            raise source_error(err) from err
        reasons = dict(sorted(found.skipped.items()))
        if over:
            reasons[SKIPPED_OVER_LIMIT] = over
            log.warning(
                "batch %s: %s document(s) past LOREGUARD_MAX_DOCUMENTS_PER_BATCH=%s skipped",
                input.batch_id,
                over,
                limit,
            )
        skipped = sum(reasons.values())
        with self._tx() as session:
            total = repository.record_ingested(
                session,
                batch_id=input.batch_id,
                skipped=skipped,
                skip_reasons=reasons,
                recognised=gathering.recognised,
                unchanged_at_source=gathering.not_modified,
                http_etag=gathering.validators.etag,
                http_last_modified=gathering.validators.last_modified,
            )
        return IngestResult(total=total, failed=failed, skipped=skipped)

    def _gather(
        self,
        kind: str,
        location: str,
        alive: Callable[[], None],
        found: FolderCount,
        *,
        earlier: Validators,
        sightings: dict[str, tuple[int, int, int]],
        trust_sightings: bool = True,
    ) -> Gathering:
        """One loader per document, in a stable order (ingest numbers documents by it); what a folder's
        listing left out goes in `found`."""
        max_bytes = self.settings.max_document_bytes
        if kind == SourceKind.FOLDER:
            folder = Path(location)
            names = folder_names(folder, roots=folder_roots(self.settings), heartbeat=alive, count=found)
            plan = plan_folder(folder, names, sightings, trust=trust_sightings)
            del names  # the plan keeps what it reads
            loaders = FolderLoaders(plan, max_bytes, allow_hard_links=self.settings.folder_allow_hard_links)
            return Gathering(loaders, recognised=plan.recognised, missing=plan.missing)
        if kind in (SourceKind.FEED, SourceKind.WEB) and has_userinfo(location):
            # Registration refuses such a URL (guard/locations.py); one stored before that rule, or
            # written to the database by hand, is refused here too, before any request and without its secret.
            raise SourceError(
                ErrorType.INVALID_SOURCE, f"{without_userinfo(location)}: {CREDENTIALS_REFUSAL}"
            )
        if kind == SourceKind.FEED:
            limits = ParseLimits(self.settings.parse_memory_mb, self.settings.document_time_limit_seconds)
            feed = gather_feed(location, self.fetcher, validators=earlier, heartbeat=alive, limits=limits)
            return Gathering(
                [(partial(_given, doc), None) for doc in feed.documents],
                not_modified=feed.not_modified,
                validators=feed.validators,
            )
        if kind == SourceKind.WEB:
            try:
                page = gather_page(location, self.fetcher, max_bytes, validators=earlier, heartbeat=alive)
            except DocumentError as err:  # the page fails alone, as a document: the batch says why
                return Gathering([(partial(_failing, err), None)])
            return Gathering(
                [(partial(_given, doc), None) for doc in page.documents],
                not_modified=page.not_modified,
                validators=page.validators,
            )
        raise SourceError(ErrorType.INVALID_SOURCE, f"unknown source kind {kind!r}")

    def _write_ingested(
        self,
        batch_id: int,
        source_id: int,
        documents: Sequence[Loader],
        count: int,
        resume_from: int,
        heartbeat: Heartbeat,
        *,
        recognise: bool = True,
    ) -> int:
        """Insert the first `count` documents' rows; rows below `resume_from` were committed by a prior attempt.

        Rows are written every INSERT_BATCH rows or once their bytes reach LOREGUARD_INGEST_FLUSH_BYTES, so
        the buffer stays small whatever the documents weigh. A heartbeat after each insert, and at least every
        HEARTBEAT_EVERY seconds between them, carries the number of rows committed so far: where a retried attempt
        resumes. (Not after every document: each heartbeat of a thread-pool activity is a call into the
        worker's event loop, and one per document made ingest twice as slow.) With `recognise`, a document whose
        URI and raw hash the source stored before is written unchanged (no stage will pick it up).
        """
        flush_bytes = self.settings.ingest_flush_bytes
        rows: list[dict[str, Any]] = []
        buffered = 0
        committed = resume_from
        failed = 0
        beat = time.monotonic()
        for seq in range(resume_from, count):
            load, stat = documents[seq]
            started = time.perf_counter()
            row: dict[str, Any] = {"batch_id": batch_id, "source_id": source_id, "seq": seq}
            try:
                raw = load()
                row.update(uri=raw.uri, content_type=raw.content_type, raw=raw.data, hints=raw.hints or None)
                row.update(status=ArtifactStatus.INGESTED, raw_hash=raw_hash(raw))
                if stat is not None:
                    row.update(file_size=stat.size, file_mtime_ns=stat.mtime_ns, file_inode=stat.inode)
                buffered += len(raw.data)
            except (DocumentError, OSError) as err:
                uri = getattr(err, "filename", None) or f"{batch_id}#{seq}"
                reason = err.reason if isinstance(err, DocumentError) else f"unreadable: {err}"
                row.update(uri=str(uri), content_type="unknown", status=ArtifactStatus.FAILED)
                row.update(failed_stage=Stage.INGEST, error=reason)
                failed += 1
            row["ingest_ms"] = (time.perf_counter() - started) * 1000
            row["ingested_at"] = utcnow()
            rows.append(row)
            if len(rows) >= INSERT_BATCH or buffered >= flush_bytes:
                self._insert(rows, source_id, batch_id, recognise)
                committed, rows, buffered = seq + 1, [], 0
                heartbeat(committed)
                beat = time.monotonic()
            elif time.monotonic() - beat >= HEARTBEAT_EVERY:  # a slow source still shows it is alive
                heartbeat(committed)
                beat = time.monotonic()
        self._insert(rows, source_id, batch_id, recognise)
        heartbeat(max(committed, count))
        return failed

    def _insert(self, rows: list[dict[str, Any]], source_id: int, batch_id: int, recognise: bool) -> None:
        if not rows:
            return
        with self._tx() as session:
            if recognise:
                self._recognise(session, rows, source_id, batch_id)
            # Every row needs the same keys for one executemany: fill the optional ones.
            keys = dict.fromkeys(_OPTIONAL_KEYS)
            repository.insert_artifacts(session, rows=[{**keys, **r} for r in rows])

    def _recognise(self, session: Session, rows: list[dict[str, Any]], source_id: int, batch_id: int) -> None:
        """Rows whose (URI, raw hash) the source stored before become unchanged, without their bytes."""
        keys = [(r["uri"], r["raw_hash"]) for r in rows if r.get("raw_hash")]
        if not keys:
            return
        before = repository.stored_raw_matches(
            session, source_id=source_id, other_than_batch=batch_id, keys=keys
        )
        now = utcnow()
        for r in rows:
            original = before.get((r["uri"], r.get("raw_hash") or ""))
            if original is None:
                continue
            r.update(
                status=ArtifactStatus.UNCHANGED,
                raw=None,
                hints=None,
                duplicate_of_id=original.artifact_id,
                similarity=1.0,
                content_hash=original.content_hash,
                simhash=original.simhash,
                language=original.language,
                title=original.title,
                author=original.author,
                published_at=original.published_at,
                word_count=original.word_count,
                processed_at=now,
            )


_OPTIONAL_KEYS = (
    "raw",
    "hints",
    "failed_stage",
    "error",
    "raw_hash",
    "file_size",
    "file_mtime_ns",
    "file_inode",
    "duplicate_of_id",
    "similarity",
    "content_hash",
    "simhash",
    "language",
    "title",
    "author",
    "published_at",
    "word_count",
    "processed_at",
)
