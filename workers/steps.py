"""The batch steps: load from the store, call the stage functions, persist, return counts.

Every activity is idempotent: it only picks up artifacts still in the status it moves them from, and writes
with upserts keyed by (batch_id, seq) or artifact id, so a retry after a crash neither loses nor duplicates.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker
from temporalio.exceptions import ApplicationError  # the error type Temporal reports; no SDK state

from data import repository
from data.db import make_engine, make_session_factory
from data.models import (
    ARTIFACT_FAILED,
    ARTIFACT_INGESTED,
    ARTIFACT_PROCESSED,
    ARTIFACT_QUARANTINED,
    ARTIFACT_STORED,
    KIND_FEED,
    KIND_FOLDER,
    KIND_WEB,
    Alert,
    Artifact,
    utcnow,
)
from orchestration.settings import Settings
from orchestration.types import (
    AlertInput,
    AwaitDecisionInput,
    BatchFailure,
    BatchPlan,
    BatchResult,
    BatchTally,
    ChunkFailureInput,
    ChunkInput,
    ChunkResult,
    CompensationResult,
    FinishBatchInput,
    IngestInput,
    IngestResult,
    RecordDecisionInput,
    RetryInput,
    StartBatchInput,
)
from workers.metrics import ChunkReport, WorkerMetrics
from workers.notify import Notice, deliver
from workers.stages.clarify import ClarificationClient, clarify, simhash_bands
from workers.stages.evaluate import Evaluator, EvaluatorError, make_evaluator
from workers.stages.fetching import Fetcher
from workers.stages.folders import folder_roots
from workers.stages.gather import SourceError, fetch_feed, fetch_page, list_folder, read_file
from workers.stages.pipeline import CpuStageResult, run_cpu_stages
from workers.stages.types import DocumentError, EvaluationInput, LibraryMatch, RawDocument

log = logging.getLogger(__name__)

INSERT_BATCH = 500  # artifacts per ingest transaction (and heartbeat)
STORE_BATCH = 50  # evaluations per store transaction


def _source_error(err: SourceError) -> ApplicationError:
    return ApplicationError(err.message, type=err.kind, non_retryable=not err.retryable)


Heartbeat = Callable[..., None]


def _no_heartbeat(*_details: Any) -> None:
    pass


def build_steps(settings: Settings) -> BatchSteps:
    """Steps with their own clients (engine, HTTP, evaluator): one set per process."""
    http = httpx.Client(timeout=settings.fetch_timeout_seconds, follow_redirects=True)
    clarifier = ClarificationClient(settings.clarification_url, http) if settings.clarification_url else None
    return BatchSteps(
        settings=settings,
        sessions=make_session_factory(make_engine(settings.target_database_url)),
        http=http,
        evaluator=make_evaluator(settings, http),
        clarifier=clarifier,
    )


class BatchSteps:
    """The work of each batch step, bound to its clients; plain code, callable with or without Temporal."""

    def __init__(
        self,
        *,
        settings: Settings,
        sessions: sessionmaker[Session],
        http: httpx.Client,
        evaluator: Evaluator,
        clarifier: ClarificationClient | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.http = http
        self.fetcher = Fetcher.from_settings(settings)  # sources' URLs: address policy, byte and time limits
        self.evaluator = evaluator
        self.metrics: WorkerMetrics | None = None  # set in the worker process; pool processes report instead
        self.clarifier = clarifier

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        with self.sessions.begin() as session:
            yield session

    # --- bookkeeping ------------------------------------------------------------------------------------

    def start_batch(self, input: StartBatchInput) -> BatchPlan:
        with self._tx() as session:
            batch = repository.mark_batch_running(
                session, batch_id=input.batch_id, workflow_id=input.workflow_id
            )
            source = repository.get_source(session, source_id=batch.source_id)
            s = self.settings
            return BatchPlan(
                source_id=source.id,
                kind=source.kind,
                location=source.location,
                chunk_size=s.chunk_size,
                chunks_per_child=s.chunks_per_child,
                chunk_window=s.chunk_window,
                max_children=s.max_children,
                heartbeat_seconds=s.heartbeat_seconds,
                max_failed_share=s.max_failed_share,
                approval_timeout_hours=s.approval_timeout_hours,
            )

    def finish_batch(self, input: FinishBatchInput) -> BatchResult:
        with self._tx() as session:
            batch = repository.finish_batch(
                session,
                batch_id=input.batch_id,
                status=input.status,
                error_type=input.error_type,
                error_message=input.error_message,
            )
            return BatchResult(
                batch_id=batch.id,
                status=batch.status,
                total=batch.total,
                stored=batch.stored,
                failed=batch.failed,
                error_type=batch.error_type,
                error_message=batch.error_message,
            )

    def batch_seconds(self, batch_id: int) -> float | None:
        """Start to finish of a finished batch (for the batch duration histogram), None when unknown."""
        with self.sessions() as session:
            batch = repository.get_batch(session, batch_id=batch_id)
            start, end = batch.started_at or batch.created_at, batch.finished_at
        if start is None or end is None:
            return None
        if (start.tzinfo is None) != (end.tzinfo is None):
            start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
        return (end - start).total_seconds()

    def fail_chunk(self, input: ChunkFailureInput) -> int:
        failed = 0
        with self._tx() as session:
            for status, stage in ((ARTIFACT_INGESTED, "normalize"), (ARTIFACT_PROCESSED, "evaluate")):
                rows = repository.load_artifacts(
                    session,
                    batch_id=input.batch_id,
                    start_seq=input.start_seq,
                    end_seq=input.end_seq,
                    status=status,
                )
                repository.update_artifacts(
                    session,
                    rows=[
                        {"id": a.id, "status": ARTIFACT_FAILED, "failed_stage": stage, "error": input.reason}
                        for a in rows
                    ],
                )
                failed += len(rows)
        return failed

    # --- failed batches -------------------------------------------------------------------------------

    def tally_batch(self, batch_id: int) -> BatchTally:
        with self.sessions() as session:
            counts = repository.artifact_status_counts(session, batch_id=batch_id)
        return BatchTally(
            total=sum(counts.values()),
            stored=counts.get(ARTIFACT_STORED, 0) + counts.get(ARTIFACT_QUARANTINED, 0),
            failed=counts.get(ARTIFACT_FAILED, 0),
        )

    def compensate_batch(self, failure: BatchFailure) -> CompensationResult:
        with self._tx() as session:
            return CompensationResult(
                repository.compensate_batch(session, batch_id=failure.batch_id, stage=failure.stage)
            )

    def raise_alert(self, input: AlertInput) -> str:
        """Record the alert once and notify the configured channels; a retry does not notify twice."""
        with self._tx() as session:
            alert, _ = repository.raise_alert(
                session, batch_id=input.batch_id, kind=input.kind, level=input.level, message=input.message
            )
            alert_id, delivered = alert.id, alert.delivery
        if delivered is not None:
            return delivered
        subject = (
            f"LoreGuard {input.level.upper()}: batch {input.batch_id}" if input.batch_id else "LoreGuard"
        )
        outcome = deliver(
            self.settings,
            Notice(subject=subject, text=input.message, level=input.level),
            self.http,
            self.settings.notify_channels,
        )
        summary = "; ".join(f"{channel}: {result}" for channel, result in outcome.items())
        with self._tx() as session:
            session.execute(update(Alert).where(Alert.id == alert_id).values(delivery=summary))
        return summary

    def await_decision(self, input: AwaitDecisionInput) -> None:
        f = input.failure
        with self._tx() as session:
            repository.mark_awaiting_decision(
                session,
                batch_id=f.batch_id,
                stage=f.stage,
                error_type=f.error_type,
                error_message=f.message,
                deadline=datetime.fromisoformat(input.deadline_iso),
            )

    def record_decision(self, input: RecordDecisionInput) -> None:
        with self._tx() as session:
            repository.record_decision(
                session,
                batch_id=input.batch_id,
                decision=input.decision,
                actor=input.actor,
                reason=input.reason,
                attempt=input.attempt,
            )

    def prepare_retry(self, input: RetryInput) -> int:
        with self._tx() as session:
            return repository.prepare_retry(
                session, batch_id=input.batch_id, stage=input.stage, attempt=input.attempt
            )

    # --- ingest -----------------------------------------------------------------------------------------

    def ingest_source(
        self, input: IngestInput, *, resume_from: int = 0, heartbeat: Heartbeat = _no_heartbeat
    ) -> IngestResult:
        with self.sessions() as session:
            batch = repository.get_batch(session, batch_id=input.batch_id)
            source = repository.get_source(session, source_id=batch.source_id)
            kind, location, source_id = source.kind, source.location, source.id
        try:
            documents = self._gather(kind, location)
            failed = self._write_ingested(input.batch_id, source_id, documents, resume_from, heartbeat)
        except SourceError as err:
            raise _source_error(err) from err
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

    # --- process: normalize, extract, clarify -----------------------------------------------------------

    def process_chunk(self, input: ChunkInput, *, heartbeat: Heartbeat = _no_heartbeat) -> ChunkResult:
        return self.process_chunk_report(input, heartbeat=heartbeat)[0]

    def process_chunk_report(
        self, input: ChunkInput, *, heartbeat: Heartbeat = _no_heartbeat
    ) -> tuple[ChunkResult, ChunkReport]:
        """Process a chunk; the report (for the worker's metrics) travels back with the result."""
        report = ChunkReport(stage="process")
        with self.sessions() as session:
            artifacts = repository.load_artifacts(
                session,
                batch_id=input.batch_id,
                start_seq=input.start_seq,
                end_seq=input.end_seq,
                status=ARTIFACT_INGESTED,
                with_raw=True,
            )
            docs = [
                (a.id, RawDocument(a.uri, a.content_type, a.raw or b"", dict(a.hints or {})))
                for a in artifacts
            ]
            report.source = str(artifacts[0].source_id) if artifacts else ""
        if not docs:
            return ChunkResult(done=0, failed=0), report
        results = self._run_cpu_stages([raw for _, raw in docs], heartbeat)
        rows = self._clarify([(aid, res) for (aid, _), res in zip(docs, results, strict=True)])
        with self._tx() as session:
            repository.update_artifacts(session, rows=rows)
        failed = sum(1 for r in rows if r["status"] == ARTIFACT_FAILED)
        for r in rows:
            for stage in ("normalize", "extract", "clarify"):
                report.observe(stage, r.get(f"{stage}_ms"))
            if r["status"] == ARTIFACT_FAILED:
                report.failed_by_stage[r.get("failed_stage") or "process"] += 1
        report.done = len(rows) - failed
        return ChunkResult(done=len(rows) - failed, failed=failed), report

    def _run_cpu_stages(self, raws: Sequence[RawDocument], heartbeat: Heartbeat) -> list[CpuStageResult]:
        out = []
        for i, raw in enumerate(raws):
            out.append(run_cpu_stages(raw, max_pdf_pages=self.settings.max_pdf_pages))
            if i % 20 == 19:
                heartbeat()
        return out

    def _clarify(self, results: Sequence[tuple[int, CpuStageResult]]) -> list[dict[str, Any]]:
        started = time.perf_counter()
        ok = [(aid, r) for aid, r in results if r.normalized is not None and r.metadata is not None]
        bands = [simhash_bands(r.normalized.simhash) for _, r in ok if r.normalized]
        with self.sessions() as session:
            library = repository.find_library_matches(
                session,
                content_hashes=[r.normalized.content_hash for _, r in ok if r.normalized],
                bands=[[b[i] for b in bands] for i in range(4)],
            )
        matches = [LibraryMatch(m.artifact_id, m.content_hash, m.simhash) for m in library]
        per_doc_lookup_ms = (time.perf_counter() - started) * 1000 / max(len(ok), 1)
        now = utcnow()
        rows: list[dict[str, Any]] = []
        for aid, res in results:
            norm, meta = res.normalized, res.metadata
            row: dict[str, Any] = {"id": aid, "normalize_ms": res.normalize_ms, "extract_ms": res.extract_ms}
            if norm is None or meta is None:
                row.update(status=ARTIFACT_FAILED, failed_stage=res.failed_stage, error=res.error)
                rows.append(row)
                continue
            t0 = time.perf_counter()
            # Only earlier artifacts count as originals; documents earlier in this chunk count too.
            candidates = [m for m in matches if m.artifact_id < aid]
            notes = None
            if self.clarifier is not None:
                notes = self.clarifier.clarify(norm.uri, meta.title, norm.text[:2000])
            found = clarify(norm, candidates, notes)
            matches.append(LibraryMatch(aid, norm.content_hash, norm.simhash))
            b0, b1, b2, b3 = simhash_bands(norm.simhash)
            row.update(
                status=ARTIFACT_PROCESSED,
                content_hash=norm.content_hash,
                simhash=norm.simhash,
                simhash_band0=b0,
                simhash_band1=b1,
                simhash_band2=b2,
                simhash_band3=b3,
                language=norm.language,
                text=norm.text,
                title=meta.title[:1000] if meta.title else None,
                author=meta.author[:500] if meta.author else None,
                published_at=meta.published_at,
                word_count=meta.word_count,
                duplicate_of_id=found.duplicate_of,
                near_duplicate_of_id=found.near_duplicate_of,
                similarity=found.similarity,
                clarification=found.notes,
                clarify_ms=per_doc_lookup_ms + (time.perf_counter() - t0) * 1000,
                processed_at=now,
            )
            rows.append(row)
        return [_complete(r) for r in rows]

    # --- evaluate and store -----------------------------------------------------------------------------

    def evaluate_chunk(self, input: ChunkInput, *, heartbeat: Heartbeat = _no_heartbeat) -> ChunkResult:
        return self.evaluate_chunk_report(input, heartbeat=heartbeat)[0]

    def evaluate_chunk_report(
        self, input: ChunkInput, *, heartbeat: Heartbeat = _no_heartbeat
    ) -> tuple[ChunkResult, ChunkReport]:
        report = ChunkReport(stage="evaluate")
        with self.sessions() as session:
            artifacts = repository.load_artifacts(
                session,
                batch_id=input.batch_id,
                start_seq=input.start_seq,
                end_seq=input.end_seq,
                status=ARTIFACT_PROCESSED,
            )
            kind = repository.get_source(session, source_id=artifacts[0].source_id).kind if artifacts else ""
            report.source = str(artifacts[0].source_id) if artifacts else ""
        stored = failed = 0
        for start in range(0, len(artifacts), STORE_BATCH):
            group = artifacts[start : start + STORE_BATCH]
            s, f = self._evaluate_and_store(group, kind, report)
            stored += s
            failed += f
            heartbeat(start + len(group))
        report.done = stored
        return ChunkResult(done=stored, failed=failed), report

    def _evaluate_and_store(
        self, artifacts: Sequence[Artifact], kind: str, report: ChunkReport | None = None
    ) -> tuple[int, int]:
        report = report if report is not None else ChunkReport(stage="evaluate")
        evaluations: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for art in artifacts:
            t0 = time.perf_counter()
            report.evaluator_calls += 1
            try:
                verdict = self.evaluator.evaluate(
                    EvaluationInput(
                        uri=art.uri,
                        title=art.title,
                        author=art.author,
                        published_at=art.published_at,
                        text=art.text or "",
                        word_count=art.word_count or 0,
                        language=art.language or "und",
                        source_kind=kind,
                        is_duplicate=art.duplicate_of_id is not None,
                    )
                )
            except EvaluatorError as err:
                report.evaluator_errors["retryable" if not err.non_retryable else "rejected"] += 1
                if not err.non_retryable:
                    # Keep what was evaluated so far, then let Temporal retry the rest with backoff.
                    self._store(evaluations, updates)
                    if self.metrics is not None:  # the report dies with the raise: record what happened
                        report.done = sum(report.labels.values())
                        self.metrics.record_chunk(report, evaluator=self.settings.evaluator)
                    raise ApplicationError(
                        f"evaluator unavailable: {err}", type="EvaluatorUnavailable"
                    ) from err
                updates.append(
                    {"id": art.id, "status": ARTIFACT_FAILED, "failed_stage": "evaluate", "error": str(err)}
                )
                report.failed_by_stage["evaluate"] += 1
                continue
            evaluations.append(
                {
                    "artifact_id": art.id,
                    "label": verdict.label,
                    "confidence": verdict.confidence,
                    "relevance": verdict.relevance,
                    "credibility": verdict.credibility,
                    "rationale": verdict.rationale,
                    "evaluator": verdict.evaluator,
                    "model": verdict.model,
                }
            )
            evaluate_ms = (time.perf_counter() - t0) * 1000
            updates.append({"id": art.id, "status": ARTIFACT_STORED, "evaluate_ms": evaluate_ms})
            report.labels[verdict.label] += 1
            report.observe("evaluate", evaluate_ms)
        self._store(evaluations, updates)
        return len(evaluations), len(updates) - len(evaluations)

    def _store(self, evaluations: list[dict[str, Any]], updates: list[dict[str, Any]]) -> None:
        if not updates:
            return
        t0 = time.perf_counter()
        now = utcnow()
        with self._tx() as session:
            repository.upsert_evaluations(session, rows=evaluations)
            store_ms = (time.perf_counter() - t0) * 1000 / max(len(updates), 1)
            blank = {"evaluate_ms": None, "failed_stage": None, "error": None}
            rows = [
                {
                    **blank,
                    **u,
                    "stored_at": now if u["status"] == ARTIFACT_STORED else None,
                    "store_ms": store_ms,
                }
                for u in updates
            ]
            repository.update_artifacts(session, rows=rows)
        evaluations.clear()
        updates.clear()


_PROCESSED_KEYS = [
    "content_hash",
    "simhash",
    "simhash_band0",
    "simhash_band1",
    "simhash_band2",
    "simhash_band3",
    "language",
    "text",
    "title",
    "author",
    "published_at",
    "word_count",
    "duplicate_of_id",
    "near_duplicate_of_id",
    "similarity",
    "clarification",
    "clarify_ms",
    "processed_at",
    "failed_stage",
    "error",
]


def _complete(row: dict[str, Any]) -> dict[str, Any]:
    """Give every row the same keys so one executemany updates the chunk."""
    return {**dict.fromkeys(_PROCESSED_KEYS), **row}
