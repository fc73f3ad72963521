"""Incremental refresh: what the last successful refresh of a source saw, and what a completed batch records.

Nothing here is written by a batch in flight except marks that only its own completion acts on, so a refresh
killed midway (or failed, or cancelled) leaves the source's record as the last successful one left it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.orm import Session

from core.vocabulary import ArtifactStatus
from data.models import Artifact, Batch, Sighting, Source, utcnow
from data.repository._base import _insert

_IN_CHUNK = 500  # values per IN (...) list: well under every backend's parameter limit


def _chunks(values: Sequence[Any], size: int = _IN_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def uri_hash(uri: str) -> str:
    return hashlib.sha256(uri.encode("utf-8")).hexdigest()


def load_sightings(session: Session, *, source_id: int) -> dict[str, tuple[int, int, int]]:
    """URI -> (size, mtime in ns, inode) of every file the source's last successful refreshes read."""
    rows = session.execute(
        select(Sighting.uri, Sighting.size, Sighting.mtime_ns, Sighting.inode).where(
            Sighting.source_id == source_id
        )
    )
    return {uri: (int(size), int(mtime), int(inode)) for uri, size, mtime, inode in rows}


def mark_missing(session: Session, *, source_id: int, batch_id: int, uris: Sequence[str]) -> None:
    """Mark the sightings the batch did not find any more (idempotent: an ingest retried marks afresh)."""
    session.execute(
        update(Sighting)
        .where(Sighting.source_id == source_id, Sighting.missing_batch_id == batch_id)
        .values(missing_batch_id=None)
    )
    for part in _chunks([uri_hash(u) for u in uris]):
        session.execute(
            update(Sighting)
            .where(Sighting.source_id == source_id, Sighting.uri_hash.in_(part))
            .values(missing_batch_id=batch_id)
        )


@dataclass(frozen=True)
class StoredBefore:
    """The original a document gathered again (same URI, same raw hash) stands for, and what it says."""

    artifact_id: int
    content_hash: str | None
    simhash: int | None
    language: str | None
    title: str | None
    author: str | None
    published_at: datetime | None
    word_count: int | None


def stored_raw_matches(
    session: Session, *, source_id: int, other_than_batch: int, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], StoredBefore]:
    """(uri, raw hash) -> the stored original, for the keys the source stored in earlier batches.

    An unchanged artifact of an earlier batch counts too: it points at its original (`duplicate_of_id`).
    """
    wanted = set(keys)
    hashes = sorted({h for _, h in wanted})
    found: dict[tuple[str, str], StoredBefore] = {}
    for part in _chunks(hashes):
        rows = session.execute(
            select(
                Artifact.uri,
                Artifact.raw_hash,
                Artifact.status,
                Artifact.id,
                Artifact.duplicate_of_id,
                Artifact.content_hash,
                Artifact.simhash,
                Artifact.language,
                Artifact.title,
                Artifact.author,
                Artifact.published_at,
                Artifact.word_count,
            )
            .where(
                Artifact.source_id == source_id,
                Artifact.batch_id != other_than_batch,
                Artifact.raw_hash.in_(part),
                Artifact.status.in_((ArtifactStatus.STORED, ArtifactStatus.UNCHANGED)),
            )
            .order_by(Artifact.id)
        )
        for r in rows:
            key = (r.uri, r.raw_hash)
            if key not in wanted or key in found:
                continue
            original = r.id if r.status == ArtifactStatus.STORED else r.duplicate_of_id
            if original is None:
                continue
            found[key] = StoredBefore(
                original,
                r.content_hash,
                r.simhash,
                r.language,
                r.title,
                r.author,
                r.published_at,
                r.word_count,
            )
    return found


def complete_incremental(session: Session, *, batch: Batch) -> None:
    """A batch completed: its source's validators, sightings and gone documents become what it saw."""
    source = session.get(Source, batch.source_id)
    if source is None:
        return
    # what the server said of the version gathered (after a 304, the validators it repeated or the old ones)
    source.http_etag = batch.http_etag
    source.http_last_modified = batch.http_last_modified
    _record_sightings(session, batch)
    _mark_gone(session, batch)


SIGHTINGS_PAGE = 2000  # artifacts read and sightings written at a time: memory stays flat at any batch size


def _record_sightings(session: Session, batch: Batch) -> None:
    """Upsert a sighting for every file the batch stored or recognised, a page of rows at a time (all of a
    100,000-file batch's rows at once held about 80 MB in the worker)."""
    now = utcnow()
    ins = _insert(session)(Sighting)
    stmt = ins.on_conflict_do_update(
        index_elements=["source_id", "uri_hash"],
        set_={
            col: getattr(ins.excluded, col)
            for col in (
                "uri",
                "size",
                "mtime_ns",
                "inode",
                "raw_hash",
                "batch_id",
                "missing_batch_id",
                "seen_at",
            )
        },
    )
    # A file that came back: its documents are no longer gone.
    any_gone = bool(
        session.scalar(
            select(exists().where(Artifact.source_id == batch.source_id, Artifact.gone_at.is_not(None)))
        )
    )
    after = -1
    while True:
        rows = session.execute(
            select(
                Artifact.seq,
                Artifact.uri,
                Artifact.file_size,
                Artifact.file_mtime_ns,
                Artifact.file_inode,
                Artifact.raw_hash,
            )
            .where(
                Artifact.batch_id == batch.id,
                Artifact.seq > after,
                Artifact.status.in_((ArtifactStatus.STORED, ArtifactStatus.UNCHANGED)),
                Artifact.file_size.is_not(None),
            )
            .order_by(Artifact.seq)
            .limit(SIGHTINGS_PAGE)
        ).all()
        if not rows:
            return
        after = rows[-1].seq
        values = [
            {
                "source_id": batch.source_id,
                "uri_hash": uri_hash(uri),
                "uri": uri,
                "size": size,
                "mtime_ns": mtime,
                "inode": inode if inode is not None else 0,
                "raw_hash": raw,
                "batch_id": batch.id,
                "missing_batch_id": None,
                "seen_at": now,
            }
            for _, uri, size, mtime, inode, raw in rows
        ]
        session.execute(stmt, values)
        if any_gone:
            for part in _chunks([r.uri for r in rows]):
                session.execute(
                    update(Artifact)
                    .where(
                        Artifact.source_id == batch.source_id,
                        Artifact.gone_at.is_not(None),
                        Artifact.uri.in_(part),
                    )
                    .values(gone_at=None)
                )


def _mark_gone(session: Session, batch: Batch) -> None:
    missing = list(
        session.scalars(
            select(Sighting.uri).where(
                Sighting.source_id == batch.source_id, Sighting.missing_batch_id == batch.id
            )
        )
    )
    if not missing:
        return
    now = utcnow()
    for part in _chunks(missing):
        session.execute(
            update(Artifact)
            .where(Artifact.source_id == batch.source_id, Artifact.uri.in_(part), Artifact.gone_at.is_(None))
            .values(gone_at=now)
        )
    session.execute(
        delete(Sighting).where(Sighting.source_id == batch.source_id, Sighting.missing_batch_id == batch.id)
    )


def count_gone(session: Session, *, source_id: int | None = None) -> int:
    """Stored documents their source no longer has."""
    stmt = select(Artifact.id).where(Artifact.gone_at.is_not(None), Artifact.status == ArtifactStatus.STORED)
    if source_id is not None:
        stmt = stmt.where(Artifact.source_id == source_id)
    return int(session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
