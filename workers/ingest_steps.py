"""The ingest step: gather a source's documents and record each with its sequence number (resumable)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from temporalio.exceptions import ApplicationError  # the error type Temporal reports; no SDK state

from core.urls import CREDENTIALS_REFUSAL, has_userinfo, without_userinfo
from core.vocabulary import (
    ARTIFACT_FAILED,
    ARTIFACT_INGESTED,
    KIND_FEED,
    KIND_FOLDER,
    KIND_WEB,
    SKIPPED_OVER_LIMIT,
)
from data import repository
from data.models import utcnow
from orchestration.types import (
    IngestInput,
    IngestResult,
)
from workers.stages.confined import ParseLimits
from workers.stages.folders import folder_roots
from workers.stages.gather import (
    FolderCount,
    SourceError,
    fetch_feed,
    fetch_page,
    list_folder,
    read_file,
)
from workers.stages.types import DocumentError, RawDocument
from workers.steps_base import Heartbeat, StepsBase, no_heartbeat

log = logging.getLogger(__name__)

INSERT_BATCH = 500  # at most this many artifacts per ingest transaction (fewer when they weigh much)


def _given(doc: RawDocument) -> RawDocument:
    return doc


def source_error(err: SourceError) -> ApplicationError:
    return ApplicationError(err.message, type=err.kind, non_retryable=not err.retryable)


class IngestSteps(StepsBase):
    def ingest_source(
        self, input: IngestInput, *, resume_from: int = 0, heartbeat: Heartbeat = no_heartbeat
    ) -> IngestResult:
        """Record the source's documents, at most LOREGUARD_MAX_DOCUMENTS_PER_BATCH; the rest, and a folder's
        files of a type the pipeline does not read, are counted as skipped with why."""
        with self.sessions() as session:
            batch = repository.get_batch(session, batch_id=input.batch_id)
            source = repository.get_source(session, source_id=batch.source_id)
            kind, location, source_id = source.kind, source.location, source.id

        def alive() -> None:
            # Listing and fetching commit nothing: the details keep the prior attempt's resume point.
            heartbeat(resume_from)

        found = FolderCount()
        try:
            documents = self._gather(kind, location, alive, found)
            limit = self.settings.max_documents_per_batch
            over = max(0, len(documents) - limit)
            failed = self._write_ingested(
                input.batch_id, source_id, documents[:limit], resume_from, heartbeat
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
                session, batch_id=input.batch_id, skipped=skipped, skip_reasons=reasons
            )
        return IngestResult(total=total, failed=failed, skipped=skipped)

    def _gather(
        self, kind: str, location: str, alive: Callable[[], None], found: FolderCount
    ) -> list[Callable[[], RawDocument]]:
        """One loader per document, in a stable order (ingest numbers documents by it); what a folder's
        listing left out goes in `found`."""
        max_bytes = self.settings.max_document_bytes
        if kind == KIND_FOLDER:
            folder = Path(location)
            paths = list_folder(folder, roots=folder_roots(self.settings), heartbeat=alive, count=found)
            links = self.settings.folder_allow_hard_links
            return [
                partial(read_file, path, max_bytes, folder=folder, allow_hard_links=links) for path in paths
            ]
        if kind in (KIND_FEED, KIND_WEB) and has_userinfo(location):
            # Registration refuses such a URL (workers/stages/locations.py); one stored before that rule, or
            # written to the database by hand, is refused here too, before any request and without its secret.
            raise SourceError("InvalidSource", f"{without_userinfo(location)}: {CREDENTIALS_REFUSAL}")
        if kind == KIND_FEED:
            limits = ParseLimits(self.settings.parse_memory_mb, self.settings.document_time_limit_seconds)
            feed = fetch_feed(location, self.fetcher, heartbeat=alive, limits=limits)
            return [partial(_given, doc) for doc in feed]
        if kind == KIND_WEB:
            return [partial(fetch_page, location, self.fetcher, max_bytes, heartbeat=alive)]
        raise SourceError("InvalidSource", f"unknown source kind {kind!r}")

    def _write_ingested(
        self,
        batch_id: int,
        source_id: int,
        documents: Sequence[Callable[[], RawDocument]],
        resume_from: int,
        heartbeat: Heartbeat,
    ) -> int:
        """Insert ingested rows; rows below `resume_from` were committed by a prior attempt.

        Rows are written every INSERT_BATCH rows or once their bytes reach LOREGUARD_INGEST_FLUSH_BYTES, so
        the buffer stays small whatever the documents weigh. The heartbeat after each document carries the
        number of rows committed so far: where a retried attempt resumes.
        """
        flush_bytes = self.settings.ingest_flush_bytes
        rows: list[dict[str, Any]] = []
        buffered = 0
        committed = resume_from
        failed = 0
        for seq, load in enumerate(documents):
            if seq < resume_from:
                continue
            started = time.perf_counter()
            row: dict[str, Any] = {"batch_id": batch_id, "source_id": source_id, "seq": seq}
            try:
                raw = load()
                row.update(uri=raw.uri, content_type=raw.content_type, raw=raw.data, hints=raw.hints or None)
                row["status"] = ARTIFACT_INGESTED
                buffered += len(raw.data)
            except (DocumentError, OSError) as err:
                uri = getattr(err, "filename", None) or f"{batch_id}#{seq}"
                reason = err.reason if isinstance(err, DocumentError) else f"unreadable: {err}"
                row.update(uri=str(uri), content_type="unknown", status=ARTIFACT_FAILED)
                row.update(failed_stage="ingest", error=reason)
                failed += 1
            row["ingest_ms"] = (time.perf_counter() - started) * 1000
            row["ingested_at"] = utcnow()
            rows.append(row)
            if len(rows) >= INSERT_BATCH or buffered >= flush_bytes:
                self._insert(rows)
                committed, rows, buffered = seq + 1, [], 0
            heartbeat(committed)
        self._insert(rows)
        heartbeat(max(committed, len(documents)))
        return failed

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            # Every row needs the same keys for one executemany: fill the optional ones.
            keys = {"raw": None, "hints": None, "failed_stage": None, "error": None}
            with self._tx() as session:
                repository.insert_artifacts(session, rows=[{**keys, **r} for r in rows])
