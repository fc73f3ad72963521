"""The chunk steps: process (normalize, extract, clarify) and evaluate-and-store a range of a batch's documents.

Every step is idempotent: it only picks up artifacts still in the status it moves them from, and writes with
upserts keyed by (batch_id, seq) or artifact id, so a retry after a crash neither loses nor duplicates.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session
from temporalio.exceptions import ApplicationError  # the error type Temporal reports; no SDK state

from core.errors import ErrorType
from core.vocabulary import ArtifactStatus, Stage
from data import repository
from data.models import Artifact, utcnow
from guard.types import RawDocument
from orchestration.types import (
    ChunkInput,
    ChunkResult,
)
from workers.metrics import ChunkReport
from workers.stages.clarify import clarify, simhash_bands
from workers.stages.evaluate import EvaluatorError
from workers.stages.pipeline import CpuStageResult, run_cpu_stages
from workers.stages.types import EvaluationInput, EvaluationResult, LibraryMatch
from workers.steps_base import Heartbeat, StepsBase, no_heartbeat

STORE_BATCH = 50  # evaluations per store transaction


class ChunkSteps(StepsBase):
    # --- process: normalize, extract, clarify -----------------------------------------------------------

    def process_chunk(self, input: ChunkInput, *, heartbeat: Heartbeat = no_heartbeat) -> ChunkResult:
        return self.process_chunk_report(input, heartbeat=heartbeat)[0]

    def process_chunk_report(
        self, input: ChunkInput, *, heartbeat: Heartbeat = no_heartbeat
    ) -> tuple[ChunkResult, ChunkReport]:
        """Process a chunk; the report (for the worker's metrics) travels back with the result."""
        report = ChunkReport(stage="process")
        with self.sessions() as session:
            artifacts = repository.load_artifacts(
                session,
                batch_id=input.batch_id,
                start_seq=input.start_seq,
                end_seq=input.end_seq,
                status=ArtifactStatus.INGESTED,
                with_raw=True,
            )
            docs = [
                (a.id, RawDocument(a.uri, a.content_type, a.raw or b"", dict(a.hints or {})))
                for a in artifacts
            ]
            report.source = str(artifacts[0].source_id) if artifacts else ""
            source_id = artifacts[0].source_id if artifacts else 0
        if not docs:
            return ChunkResult(done=0, failed=0), report
        results = self._run_cpu_stages([raw for _, raw in docs], heartbeat)
        rows = self._clarify(
            [(aid, res) for (aid, _), res in zip(docs, results, strict=True)],
            source_id=source_id,
            batch_id=input.batch_id,
        )
        with self._tx() as session:
            repository.update_artifacts(session, rows=rows)
            # The source stored this content before: the bytes are not needed again (nor kept twice).
            self._drop_raw(session, [r["id"] for r in rows if r["status"] == ArtifactStatus.UNCHANGED])
        failed = sum(1 for r in rows if r["status"] == ArtifactStatus.FAILED)
        for r in rows:
            for stage in (Stage.NORMALIZE, Stage.EXTRACT, Stage.CLARIFY):
                report.observe(stage, r.get(f"{stage}_ms"))
            if r["status"] == ArtifactStatus.FAILED:
                report.failed_by_stage[r.get("failed_stage") or "process"] += 1
        report.done = len(rows) - failed
        return ChunkResult(done=len(rows) - failed, failed=failed), report

    def _run_cpu_stages(self, raws: Sequence[RawDocument], heartbeat: Heartbeat) -> list[CpuStageResult]:
        out = []
        limit = self.settings.document_time_limit_seconds
        for i, raw in enumerate(raws):
            out.append(run_cpu_stages(raw, max_pdf_pages=self.settings.max_pdf_pages, time_limit=limit))
            if i % 20 == 19:
                heartbeat()
        return out

    def _drop_raw(self, session: Session, artifact_ids: list[int]) -> None:
        if self.settings.raw_retention == "drop":
            repository.drop_raw(session, artifact_ids=artifact_ids)

    def _clarify(
        self, results: Sequence[tuple[int, CpuStageResult]], *, source_id: int, batch_id: int
    ) -> list[dict[str, Any]]:
        started = time.perf_counter()
        ok = [(aid, r) for aid, r in results if r.normalized is not None and r.metadata is not None]
        bands = [simhash_bands(r.normalized.simhash) for _, r in ok if r.normalized]
        hashes = [r.normalized.content_hash for _, r in ok if r.normalized]
        with self.sessions() as session:
            library = repository.find_library_matches(
                session, content_hashes=hashes, bands=[[b[i] for b in bands] for i in range(4)]
            )
            # Content this source already stored in an earlier batch: a refresh of an unchanged source.
            stored_before = repository.stored_by_source(
                session, source_id=source_id, other_than_batch=batch_id, content_hashes=hashes
            )
        matches = [LibraryMatch(m.artifact_id, m.content_hash, m.simhash) for m in library]
        per_doc_lookup_ms = (time.perf_counter() - started) * 1000 / max(len(ok), 1)
        now = utcnow()
        rows: list[dict[str, Any]] = []
        for aid, res in results:
            norm, meta = res.normalized, res.metadata
            row: dict[str, Any] = {"id": aid, "normalize_ms": res.normalize_ms, "extract_ms": res.extract_ms}
            if norm is None or meta is None:
                row.update(status=ArtifactStatus.FAILED, failed_stage=res.failed_stage, error=res.error)
                rows.append(row)
                continue
            t0 = time.perf_counter()
            earlier = stored_before.get(norm.content_hash)
            if earlier is not None:
                row.update(
                    status=ArtifactStatus.UNCHANGED,
                    content_hash=norm.content_hash,
                    simhash=norm.simhash,
                    language=norm.language,
                    title=meta.title[:1000] if meta.title else None,
                    author=meta.author[:500] if meta.author else None,
                    published_at=meta.published_at,
                    word_count=meta.word_count,
                    duplicate_of_id=earlier,
                    similarity=1.0,
                    clarify_ms=per_doc_lookup_ms + (time.perf_counter() - t0) * 1000,
                    processed_at=now,
                )
                rows.append(row)
                continue
            # Only earlier artifacts count as originals; documents earlier in this chunk count too.
            candidates = [m for m in matches if m.artifact_id < aid]
            notes = None
            if self.clarifier is not None:
                notes = self.clarifier.clarify(norm.uri, meta.title, norm.text[:2000])
            found = clarify(norm, candidates, notes)
            matches.append(LibraryMatch(aid, norm.content_hash, norm.simhash))
            b0, b1, b2, b3 = simhash_bands(norm.simhash)
            row.update(
                status=ArtifactStatus.PROCESSED,
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

    def evaluate_chunk(self, input: ChunkInput, *, heartbeat: Heartbeat = no_heartbeat) -> ChunkResult:
        return self.evaluate_chunk_report(input, heartbeat=heartbeat)[0]

    def evaluate_chunk_report(
        self, input: ChunkInput, *, heartbeat: Heartbeat = no_heartbeat
    ) -> tuple[ChunkResult, ChunkReport]:
        report = ChunkReport(stage="evaluate")
        with self.sessions() as session:
            artifacts = repository.load_artifacts(
                session,
                batch_id=input.batch_id,
                start_seq=input.start_seq,
                end_seq=input.end_seq,
                status=ArtifactStatus.PROCESSED,
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
        inputs = [evaluation_input(art, kind) for art in artifacts]
        # A model evaluator judges the whole group in a few batched calls; its time is shared among the group.
        evaluate_many = getattr(self.evaluator, "evaluate_many", None)
        batched: list[EvaluationResult] | None = None
        share_ms = 0.0
        if evaluate_many is not None and inputs:
            t0 = time.perf_counter()
            batched = evaluate_many(inputs)
            share_ms = (time.perf_counter() - t0) * 1000 / len(inputs)
        for i, art in enumerate(artifacts):
            t0 = time.perf_counter()
            report.evaluator_calls += 1
            try:
                verdict = batched[i] if batched is not None else self.evaluator.evaluate(inputs[i])
            except EvaluatorError as err:
                report.evaluator_errors["retryable" if not err.non_retryable else "rejected"] += 1
                if not err.non_retryable:
                    # Keep what was evaluated so far, then let Temporal retry the rest with backoff.
                    self._store(evaluations, updates)
                    if self.metrics is not None:  # the report dies with the raise: record what happened
                        report.done = sum(report.labels.values())
                        self.metrics.record_chunk(report, evaluator=self.settings.evaluator)
                    raise ApplicationError(
                        f"evaluator unavailable: {err}", type=ErrorType.EVALUATOR_UNAVAILABLE
                    ) from err
                updates.append(
                    {
                        "id": art.id,
                        "status": ArtifactStatus.FAILED,
                        "failed_stage": Stage.EVALUATE,
                        "error": str(err),
                    }
                )
                report.failed_by_stage[Stage.EVALUATE] += 1
                continue
            evaluations.append(evaluation_row(art.id, verdict, self.settings.review_below_confidence))
            evaluate_ms = (time.perf_counter() - t0) * 1000 + share_ms
            updates.append({"id": art.id, "status": ArtifactStatus.STORED, "evaluate_ms": evaluate_ms})
            report.labels[verdict.label] += 1
            report.observe(Stage.EVALUATE, evaluate_ms)
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
                    "stored_at": now if u["status"] == ArtifactStatus.STORED else None,
                    "store_ms": store_ms,
                }
                for u in updates
            ]
            repository.update_artifacts(session, rows=rows)
            self._drop_raw(session, [r["id"] for r in rows if r["status"] == ArtifactStatus.STORED])
        evaluations.clear()
        updates.clear()


def evaluation_input(art: Artifact, source_kind: str) -> EvaluationInput:
    """What an evaluator reads of a processed (or stored) document."""
    return EvaluationInput(
        uri=art.uri,
        title=art.title,
        author=art.author,
        published_at=art.published_at,
        text=art.text or "",
        word_count=art.word_count or 0,
        language=art.language or "und",
        source_kind=source_kind,
        is_duplicate=art.duplicate_of_id is not None,
    )


def evaluation_row(artifact_id: int, verdict: EvaluationResult, review_below: float) -> dict[str, Any]:
    """A verdict as repository.upsert_evaluations stores it."""
    return {
        "artifact_id": artifact_id,
        "label": verdict.label,
        "confidence": verdict.confidence,
        "relevance": verdict.relevance,
        "credibility": verdict.credibility,
        "rationale": verdict.rationale,
        "evaluator": verdict.evaluator,
        "model": verdict.model,
        "topics_version": verdict.topics_version,
        # The review inbox: the evaluator's own doubt, or less confidence than the setting asks.
        "needs_review": verdict.label == "review" or verdict.confidence < review_below,
        "tokens": verdict.tokens,
    }


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
