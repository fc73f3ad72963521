"""Stored documents with an evaluator's verdict, written through the repository as the pipeline writes them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from core.vocabulary import ArtifactStatus
from data import repository
from data.models import utcnow

REVIEW_BELOW = Settings(_env_file=None).review_below_confidence


@dataclass(frozen=True)
class Verdict:
    title: str
    label: str  # the evaluator's
    confidence: float = 0.9
    relevance: float = 0.5
    needs_review: bool | None = None  # None: as the pipeline decides ("review" verdicts wait)


def store_documents(
    sessions: sessionmaker[Session], source_name: str, verdicts: list[Verdict], *, evaluator: str = "semantic"
) -> list[int]:
    """One completed batch of `source_name` (created if new) holding one stored document per verdict."""
    with sessions.begin() as session:
        existing = {s.name: s.id for s in repository.list_sources(session)}
        source_id = existing.get(source_name) or (
            repository.create_source(session, name=source_name, kind="folder", location="/srv/docs").id
        )
        batch = repository.create_batch(session, source_id=source_id)
        now = utcnow()
        repository.insert_artifacts(
            session,
            rows=[
                {
                    "batch_id": batch.id,
                    "source_id": source_id,
                    "seq": seq,
                    "uri": f"file:///srv/docs/{batch.id}-{seq}.txt",
                    "content_type": "text/plain",
                    "status": ArtifactStatus.STORED,
                    "title": v.title,
                    "text": f"{v.title}. The body of the document.",
                    "word_count": 7,
                    "language": "en",
                    "stored_at": now,
                }
                for seq, v in enumerate(verdicts)
            ],
        )
        ids = sorted(
            a.id
            for a in repository.load_artifacts(
                session, batch_id=batch.id, start_seq=0, end_seq=len(verdicts), status=ArtifactStatus.STORED
            )
        )
        repository.upsert_evaluations(
            session,
            rows=[
                {
                    "artifact_id": artifact_id,
                    "label": v.label,
                    "confidence": v.confidence,
                    "relevance": v.relevance,
                    "credibility": 0.7,
                    "rationale": f"Relevance {v.relevance:.2f}: as the test says.",
                    "evaluator": evaluator,
                    "model": "test-model",
                    "topics_version": "v1",
                    "needs_review": v.needs_review
                    if v.needs_review is not None
                    else v.label == "review" or v.confidence < REVIEW_BELOW,  # as workers/chunk_steps.py
                }
                for artifact_id, v in zip(ids, verdicts, strict=True)
            ],
        )
    return ids


def add_source(
    sessions: sessionmaker[Session], location: object, *, name: str = "docs", kind: str = "folder"
) -> int:
    """A source written straight through the repository (no audit: the test is not about who added it)."""
    with sessions.begin() as session:
        return repository.create_source(session, name=name, kind=kind, location=str(location)).id
