"""Documents as the stages see them: an evaluator's input made from a sample file, and ingested documents written
straight to a batch (as ingest leaves them for the CPU stages)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.vocabulary import ArtifactStatus
from data import repository
from data.models import Artifact
from guard.types import RawDocument
from workers.stages.extract import extract_metadata
from workers.stages.normalize import normalize
from workers.stages.types import EvaluationInput


def evaluation_input(samples: Path, name: str, content_type: str, uri: str | None = None) -> EvaluationInput:
    raw = RawDocument(uri or f"https://news.example.org/{name}", content_type, (samples / name).read_bytes())
    doc = normalize(raw)
    meta = extract_metadata(doc)
    return EvaluationInput(
        uri=doc.uri,
        title=meta.title,
        author=meta.author,
        published_at=meta.published_at,
        text=doc.text,
        word_count=meta.word_count,
        language=meta.language,
        source_kind="web",
        is_duplicate=False,
    )


def add_documents(
    sessions: sessionmaker[Session], batch_id: int, source_id: int, bodies: list[bytes]
) -> None:
    with sessions.begin() as session:
        start = len(session.scalars(select(Artifact.id).where(Artifact.batch_id == batch_id)).all())
        repository.insert_artifacts(
            session,
            rows=[
                {"batch_id": batch_id, "source_id": source_id, "seq": start + i, "uri": f"file:///doc-{start + i}.txt",
                 "content_type": "text/plain", "status": ArtifactStatus.INGESTED, "raw": body, "hints": None}
                for i, body in enumerate(bodies)
            ],
        )  # fmt: skip
