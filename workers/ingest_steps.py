"""The ingest step: gather a source's documents and record each with its sequence number (resumable)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from temporalio.exceptions import ApplicationError  # the error type Temporal reports; no SDK state

from core.vocabulary import (
    ARTIFACT_FAILED,
    ARTIFACT_INGESTED,
    KIND_FEED,
    KIND_FOLDER,
    KIND_WEB,
)
from data import repository
from data.models import utcnow
from orchestration.types import (
    IngestInput,
    IngestResult,
)
from workers.stages.folders import folder_roots
from workers.stages.gather import SourceError, fetch_feed, fetch_page, list_folder, read_file
from workers.stages.types import DocumentError, RawDocument
from workers.steps_base import Heartbeat, StepsBase, no_heartbeat

INSERT_BATCH = 500  # artifacts per ingest transaction (and heartbeat)


def source_error(err: SourceError) -> ApplicationError:
    return ApplicationError(err.message, type=err.kind, non_retryable=not err.retryable)


class IngestSteps(StepsBase):
    def ingest_source(
        self, input: IngestInput, *, resume_from: int = 0, heartbeat: Heartbeat = no_heartbeat
    ) -> IngestResult:
        with self.sessions() as session:
            batch = repository.get_batch(session, batch_id=input.batch_id)
            source = repository.get_source(session, source_id=batch.source_id)
            kind, location, source_id = source.kind, source.location, source.id
        try:
            documents = self._gather(kind, location)
            failed = self._write_ingested(input.batch_id, source_id, documents, resume_from, heartbeat)
        except SourceError as err:
            raise source_error(err) from err
        with self._tx() as session:
            total = repository.record_ingested(session, batch_id=input.batch_id)
        return IngestResult(total=total, failed=failed)

    def _gather(self, kind: str, location: str) -> Iterator[Callable[[], RawDocument]]:
        """Yields one loader per document, in a stable order (ingest numbers documents by it)."""
        max_bytes = self.settings.max_document_bytes
        if kind == KIND_FOLDER:
            for path in list_folder(Path(location), roots=folder_roots(self.settings)):
                yield lambda path=path: read_file(path, max_bytes, folder=Path(location))  # type: ignore[misc]
        elif kind == KIND_FEED:
            for doc in fetch_feed(location, self.fetcher):
                yield lambda doc=doc: doc  # type: ignore[misc]
        elif kind == KIND_WEB:
            page = fetch_page(location, self.fetcher, max_bytes)
            yield lambda: page
        else:
            raise SourceError("InvalidSource", f"unknown source kind {kind!r}")

    def _write_ingested(
        self,
        batch_id: int,
        source_id: int,
        documents: Iterator[Callable[[], RawDocument]],
        resume_from: int,
        heartbeat: Heartbeat,
    ) -> int:
        """Insert ingested rows; rows below `resume_from` were committed by a prior attempt."""
        rows: list[dict[str, Any]] = []
        failed = 0
        seq = 0
        for seq, load in enumerate(documents):
            if seq < resume_from:
                continue
            started = time.perf_counter()
            row: dict[str, Any] = {"batch_id": batch_id, "source_id": source_id, "seq": seq}
            try:
                raw = load()
                row.update(uri=raw.uri, content_type=raw.content_type, raw=raw.data, hints=raw.hints or None)
                row["status"] = ARTIFACT_INGESTED
            except (DocumentError, OSError) as err:
                uri = getattr(err, "filename", None) or f"{batch_id}#{seq}"
                reason = err.reason if isinstance(err, DocumentError) else f"unreadable: {err}"
                row.update(uri=str(uri), content_type="unknown", status=ARTIFACT_FAILED)
                row.update(failed_stage="ingest", error=reason)
                failed += 1
            row["ingest_ms"] = (time.perf_counter() - started) * 1000
            row["ingested_at"] = utcnow()
            rows.append(row)
            if len(rows) >= INSERT_BATCH:
                self._insert(rows)
                heartbeat(seq + 1)
                rows = []
        self._insert(rows)
        heartbeat(seq + 1)
        return failed

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            # Every row needs the same keys for one executemany: fill the optional ones.
            keys = {"raw": None, "hints": None, "failed_stage": None, "error": None}
            with self._tx() as session:
                repository.insert_artifacts(session, rows=[{**keys, **r} for r in rows])
