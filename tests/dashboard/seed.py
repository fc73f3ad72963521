"""A small library with known figures for the dashboard tests, and what each page should show for it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from core.vocabulary import ArtifactStatus, BatchStatus
from data.models import Alert, Artifact, Batch, Evaluation, Source, utcnow

HOSTILE = "<script>alert(1)</script> **bold**"  # must always show literally
LABELS = ("relevant", "review", "irrelevant")


@dataclass
class Seeded:
    now: datetime
    sources: dict[str, int] = field(default_factory=dict)  # name -> id
    batches: dict[str, int] = field(default_factory=dict)  # b1..b5 -> id
    stored_at: list[datetime] = field(default_factory=list)  # every stored artifact
    stored_by_source: dict[str, int] = field(default_factory=dict)
    stored_by_label: dict[str, int] = field(default_factory=dict)
    stored_by_language: dict[str, int] = field(default_factory=dict)
    relevance: list[float] = field(default_factory=list)  # of every stored artifact

    def stored_since(self, delta: timedelta) -> int:
        return sum(1 for at in self.stored_at if at >= self.now - delta)


def seed_library(sessions: sessionmaker[Session]) -> Seeded:
    """Five batches over three sources (one with a hostile name); 70 stored documents in all.

    b1 alpha  completed  26 h ago: 3 stored (outside the last 24 h), 1 failed
    b2 beta   completed   5 h ago: 4 stored
    b3 alpha  completed  30 min ago: 2 stored
    b4 hostile awaiting approval: 1 stored titled HOSTILE, 2 failed
    b5 beta   running: 60 stored a minute ago, 10 failed, 50 still ingested (120 documents, for paging)
    """
    now = utcnow()
    seeded = Seeded(now=now)
    with sessions.begin() as session:
        for name, kind, location in (
            ("alpha", "folder", "/srv/alpha"),
            ("beta", "feed", "https://example.org/feed.xml"),
            (HOSTILE, "web", "https://example.org/page"),
        ):
            source = Source(name=name, kind=kind, location=location, created_at=now - timedelta(days=2))
            session.add(source)
            session.flush()
            seeded.sources[name] = source.id
        plan = [
            ("b1", "alpha", BatchStatus.COMPLETED, now - timedelta(hours=26), [(3, 25 * 60)], 1, 0),
            ("b2", "beta", BatchStatus.COMPLETED, now - timedelta(hours=5), [(4, 4 * 60)], 0, 0),
            ("b3", "alpha", BatchStatus.COMPLETED, now - timedelta(minutes=30), [(2, 10)], 0, 0),
            ("b4", HOSTILE, BatchStatus.AWAITING_APPROVAL, now - timedelta(hours=2), [(1, 90)], 2, 0),
            ("b5", "beta", BatchStatus.RUNNING, now - timedelta(minutes=3), [(60, 1)], 10, 50),
        ]
        for key, source_name, status, created, stored_groups, failed, pending in plan:
            batch = _batch(session, seeded, key, source_name, status, created, stored_groups, failed, pending)
            seeded.batches[key] = batch.id
        b4 = session.get(Batch, seeded.batches["b4"])
        assert b4 is not None
        b4.error_type = "TooManyFailures"
        b4.error_message = f"2 of 3 documents failed: {HOSTILE}"
        b4.failed_stage = "processing"
        session.add_all(
            [
                Alert(batch_id=seeded.batches["b5"], kind="sla_warning", level="warning", message="late"),
                Alert(
                    batch_id=seeded.batches["b4"], kind="sla_critical", level="critical", message="very late"
                ),
                Alert(
                    batch_id=seeded.batches["b1"],
                    kind="sla_warning",
                    level="warning",
                    message="was late",
                    resolved_at=now,
                ),
                Alert(
                    batch_id=seeded.batches["b4"], kind="batch_failed:attempt-1", level="error", message="x"
                ),
            ]
        )
    return seeded


def _batch(
    session: Session,
    seeded: Seeded,
    key: str,
    source_name: str,
    status: str,
    created: datetime,
    stored_groups: list[tuple[int, int]],  # (documents, minutes ago stored)
    failed: int,
    pending: int,
) -> Batch:
    finished = None if status == BatchStatus.RUNNING else created + timedelta(minutes=5)
    stored_total = sum(n for n, _ in stored_groups)
    batch = Batch(
        source_id=seeded.sources[source_name],
        workflow_id=f"batch-{key}-test",
        trigger="manual",
        status=status,
        total=stored_total + failed + pending,
        stored=stored_total,
        failed=failed,
        created_at=created,
        started_at=created,
        ingested_at=created + timedelta(seconds=30),  # every seeded batch is past ingest
        finished_at=finished,
    )
    session.add(batch)
    session.flush()
    seq = 0
    for count, minutes_ago in stored_groups:
        for _ in range(count):
            stored_at = seeded.now - timedelta(minutes=minutes_ago, seconds=seq)
            language = "de" if seq % 4 == 0 else "en"
            label = LABELS[seq % 3]
            title = HOSTILE if source_name == HOSTILE else f"{key} report {seq:03d}"
            artifact = _artifact(batch, seq, ArtifactStatus.STORED, title=title, language=language)
            artifact.stored_at = stored_at
            session.add(artifact)
            session.flush()
            session.add(
                Evaluation(
                    artifact_id=artifact.id,
                    label=label,
                    confidence=0.5 + (seq % 5) / 10,
                    relevance=(seq % 10) / 10,
                    credibility=0.4,
                    rationale=f"mentions {key}; {HOSTILE if source_name == HOSTILE else 'plain'}",
                    evaluator="semantic",
                    model="paraphrase-MiniLM-L3-v2-onnx",
                    topics_version="0123456789ab",
                    model_label=label,
                    needs_review=label == "review",  # as the pipeline stores a doubtful verdict
                )
            )
            seeded.relevance.append((seq % 10) / 10)
            seeded.stored_at.append(stored_at)
            seeded.stored_by_source[source_name] = seeded.stored_by_source.get(source_name, 0) + 1
            seeded.stored_by_label[label] = seeded.stored_by_label.get(label, 0) + 1
            seeded.stored_by_language[language] = seeded.stored_by_language.get(language, 0) + 1
            seq += 1
    for _ in range(failed):
        session.add(
            _artifact(
                batch,
                seq,
                ArtifactStatus.FAILED,
                title=None,
                language=None,
                failed_stage="normalize",
                error=f"undecodable bytes in document {seq}",
            )
        )
        seq += 1
    for _ in range(pending):
        session.add(_artifact(batch, seq, ArtifactStatus.INGESTED, title=None, language=None))
        seq += 1
    return batch


def _artifact(
    batch: Batch,
    seq: int,
    status: str,
    *,
    title: str | None,
    language: str | None,
    failed_stage: str | None = None,
    error: str | None = None,
) -> Artifact:
    done = status != ArtifactStatus.INGESTED
    stored = status == ArtifactStatus.STORED
    return Artifact(
        batch_id=batch.id,
        source_id=batch.source_id,
        seq=seq,
        uri=f"file:///srv/{batch.id}/{seq}.txt",
        content_type="text/plain",
        status=status,
        failed_stage=failed_stage,
        error=error,
        title=title,
        language=language,
        text=f"body of document {seq} about ransomware" if seq % 2 else f"body of document {seq}",
        word_count=5,
        # Timings vary with seq, so a mean over the wrong documents (or a max, or nulls counted) shows.
        ingest_ms=1.0 + seq / 10,
        normalize_ms=10.0 + seq / 10 if done else None,
        extract_ms=4.0 + seq % 7 if done else None,
        clarify_ms=1.0 + 0.5 * (seq % 4) if stored else None,
        evaluate_ms=20.0 + seq % 3 if stored else None,
        store_ms=(3.0 if seq < 30 else 5.0) if stored else None,
    )
