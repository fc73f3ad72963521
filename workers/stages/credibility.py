"""Credibility: explainable features of a document (author, date, length, scheme, originality, language)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from workers.stages.types import EvaluationInput

MIN_WORDS = 150


def credibility(doc: EvaluationInput, now: Callable[[], datetime] | None = None) -> tuple[float, str]:
    """A score in 0..1 and the reasons for and against it."""
    points = 0  # whole points out of 100, so sums land exactly on the 0.5 threshold
    good: list[str] = []
    bad: list[str] = []

    def factor(weight: int, ok: bool, yes: str, no: str) -> None:
        nonlocal points
        points += weight if ok else 0
        (good if ok else bad).append(yes if ok else no)

    factor(20, bool(doc.author), "has author", "no author")
    # A day of slack so time zones never make today's article look like it comes from the future.
    today = (now or (lambda: datetime.now(UTC)))()
    future = doc.published_at is not None and doc.published_at > today + timedelta(days=1)
    factor(
        20,
        doc.published_at is not None and not future,
        "has date",
        "date in the future" if future else "no date",
    )
    factor(20, doc.word_count >= MIN_WORDS, f"{doc.word_count} words", f"only {doc.word_count} words")
    scheme = doc.uri.split(":", 1)[0].lower()
    factor(15, scheme in ("https", "file"), f"{scheme} source", f"{scheme} source is not https")
    factor(15, not doc.is_duplicate, "original", "duplicate of a stored document")
    known = doc.language not in ("", "und")
    factor(10, known, f"language {doc.language}", "language unknown")
    score = points / 100
    text = f"Credibility {score:.2f}: {', '.join(good) or 'nothing in its favour'}"
    return score, text + (f"; against: {', '.join(bad)}" if bad else "")
